package ingester

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/search"
	"github.com/rubatodb/rubato/pkg/traceql/traceqltest"
)

// TestProjectedPartMatchesLikeWhole: for random traces (as their WAL parts'
// bytes, concatenated) and random queries, Match over the projected bytes
// finds exactly what it finds over the whole ones, and the projection
// does leave bytes out.
func TestProjectedPartMatchesLikeWhole(t *testing.T) {
	seed := rand.Int63()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewSource(seed))
	traces := genTraces(r, 150)
	raws := make([][]byte, len(traces))
	for i, tr := range traces {
		for _, p := range tr.parts {
			b, err := proto.Marshal(p)
			require.NoError(t, err)
			raws[i] = append(raws[i], b...)
		}
	}
	checked, smaller := 0, 0
	for checked < 300 {
		qs, _ := traceqltest.Query(r)
		q, err := search.ParseQuery(qs)
		if err != nil {
			continue
		}
		proj := newPartProjector(search.BlockFields(q))
		if proj == nil {
			continue
		}
		checked++
		for i, tr := range traces {
			whole, err := decodeParts(raws[i], len(tr.parts))
			require.NoError(t, err)
			want, wantErr := search.Match(q, tr.id[:], whole, 3)
			pb, err := proj.project(nil, raws[i])
			require.NoError(t, err)
			if len(pb) < len(raws[i]) {
				smaller++
			}
			projected, err := decodeParts(pb, len(tr.parts))
			require.NoError(t, err)
			got, gotErr := search.Match(q, tr.id[:], projected, 3)
			require.Equal(t, wantErr != nil, gotErr != nil, "query %s: errors %v / %v", qs, wantErr, gotErr)
			require.True(t, proto.Equal(want, got), "query %s, trace %d:\n whole     %v\n projected %v", qs, i, want, got)
		}
	}
	require.Positive(t, smaller, "the projection leaves something out")
	t.Logf("%d queries × %d traces; %d projections smaller than the part", checked, len(traces), smaller)
}

// TestProjectRefusesMalformed: bytes that do not parse are an error, not
// a silently shorter part.
func TestProjectRefusesMalformed(t *testing.T) {
	q, err := search.ParseQuery(`{ span.a = "b" }`)
	require.NoError(t, err)
	proj := newPartProjector(search.BlockFields(q))
	_, err = proj.project(nil, []byte{0x0a, 0x05, 0x12, 0x09})
	require.Error(t, err)
}
