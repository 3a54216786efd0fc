package traceqltest

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/traceql"
)

func TestQueriesParseAndCoverShapes(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	seen := map[string]int{}
	for i := 0; i < 5000; i++ {
		q, shape := Query(r)
		_, err := traceql.Parse(q)
		require.NoError(t, err, "shape %s: %s", shape, q)
		seen[shape]++
	}
	for _, s := range Shapes() {
		require.NotZero(t, seen[s], "shape %s never generated", s)
	}
	t.Logf("%d shapes", len(Shapes()))
}

func TestDeterministic(t *testing.T) {
	gen := func() ([]string, []byte) {
		r := rand.New(rand.NewSource(42))
		var qs []string
		for i := 0; i < 50; i++ {
			q, _ := Query(r)
			qs = append(qs, q)
		}
		b, err := proto.Marshal(Trace(r, TraceID(r), TraceOptions{}))
		require.NoError(t, err)
		return qs, b
	}
	q1, t1 := gen()
	q2, t2 := gen()
	require.Equal(t, q1, q2)
	require.Equal(t, t1, t2)
}

func TestTracesHaveEveryFeature(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	var events, links, arrays, nilStatus, orphans, multiRes, sharedIDs int
	for i := 0; i < 200; i++ {
		td := Trace(r, TraceID(r), TraceOptions{})
		if len(td.ResourceSpans) > 1 {
			multiRes++
		}
		ids := map[string]bool{}
		for _, rs := range td.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					if ids[string(sp.SpanId)] {
						sharedIDs++
					}
					ids[string(sp.SpanId)] = true
				}
			}
		}
		for _, rs := range td.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					events += len(sp.Events)
					links += len(sp.Links)
					if sp.Status == nil {
						nilStatus++
					}
					if len(sp.ParentSpanId) > 0 && !ids[string(sp.ParentSpanId)] {
						orphans++
					}
					for _, kv := range sp.Attributes {
						if kv.Value.GetArrayValue() != nil {
							arrays++
						}
					}
				}
			}
		}
	}
	for name, n := range map[string]int{"events": events, "links": links, "arrays": arrays, "nil status": nilStatus, "orphans": orphans, "multi-resource": multiRes, "shared span IDs": sharedIDs} {
		require.NotZero(t, n, name)
	}
}
