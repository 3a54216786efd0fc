package block

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/inmem"
)

// forAttrs calls fn for every attribute of a trace, with its scope.
func forAttrs(td *tracev1.TracesData, fn func(TagScope, *commonv1.KeyValue)) {
	each := func(sc TagScope, kvs []*commonv1.KeyValue) {
		for _, kv := range kvs {
			fn(sc, kv)
		}
	}
	for _, rs := range td.GetResourceSpans() {
		each(TagResource, rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			each(TagInstrumentation, ss.GetScope().GetAttributes())
			for _, sp := range ss.GetSpans() {
				each(TagSpan, sp.GetAttributes())
				for _, e := range sp.GetEvents() {
					each(TagEvent, e.GetAttributes())
				}
				for _, l := range sp.GetLinks() {
					each(TagLink, l.GetAttributes())
				}
			}
		}
	}
}

type tagName struct {
	scope TagScope
	name  string
}

// TestTagNamesAndValues checks the tag calls of v2 (index), v1 (scan) and
// compacted blocks against the attributes of the decoded traces.
func TestTagNamesAndValues(t *testing.T) {
	be := inmem.New()
	cfg := searchTestConfig(t)
	v2 := writeSearchBlock(t, be, cfg, 11, 120)
	v1 := toV1(t, be, writeSearchBlock(t, be, cfg, 11, 120))
	copied := copyBlock(t, be, cfg, v1)
	want := map[tagName]map[TagValue]bool{}
	for _, td := range v2.traces {
		forAttrs(td, func(sc TagScope, kv *commonv1.KeyValue) {
			k := tagName{sc, kv.Key}
			if want[k] == nil {
				want[k] = map[TagValue]bool{}
			}
			if tv, ok := tagValueOf(kv.Value); ok {
				want[k][tv] = true
			}
		})
	}
	ctx := context.Background()
	for variant, b := range map[string]*searchBlock{"v2": v2, "v1": v1, "compacted": copied} {
		t.Run(variant, func(t *testing.T) {
			got := map[tagName]bool{}
			require.NoError(t, b.r.TagNames(ctx, func(sc TagScope, name string) {
				require.False(t, got[tagName{sc, name}], "name listed twice")
				got[tagName{sc, name}] = true
			}))
			require.Len(t, got, len(want))
			for k, vals := range want {
				require.True(t, got[k], "%v missing", k)
				gotVals := map[TagValue]bool{}
				require.NoError(t, b.r.TagValues(ctx, k.scope, k.name, func(v TagValue) bool {
					require.False(t, gotVals[v], "value listed twice")
					gotVals[v] = true
					return true
				}))
				for v := range gotVals {
					require.True(t, vals[v], "%v: value %v not in the block", k, v)
				}
				for v := range vals {
					if v.Type != "float" || variant == "v1" { // the index keeps float bounds only
						require.True(t, gotVals[v], "%v: value %v missing", k, v)
					}
				}
			}
			// Stopping early.
			n := 0
			require.NoError(t, b.r.TagValues(ctx, TagSpan, "a", func(TagValue) bool { n++; return false }))
			require.Equal(t, 1, n)
			require.NoError(t, b.r.TagValues(ctx, TagSpan, "absent", func(TagValue) bool { t.Fatal("no values"); return true }))
		})
	}
}

// TestSearchIndexBounded pins that high-cardinality values do not grow the
// index: a block whose every span has a unique URL and a unique attribute
// name prefix stays small and marks its sets overflowed, and searches on
// overflowed sets still find their traces.
func TestSearchIndexBounded(t *testing.T) {
	b := writeTestBlock(t, testConfig(t), 3000, false) // 30k spans, unique URLs and pods
	x, err := Open(b.be, b.meta, nil).searchIndex(context.Background())
	require.NoError(t, err)
	require.Less(t, b.meta.SearchIndexSize, int64(200<<10), "index of %d spans", b.meta.TotalSpans)
	url := x.scopes[TagSpan].keys["http.url"]
	require.NotNil(t, url)
	require.True(t, url.strs.overflow)
	require.False(t, x.scopes[TagResource].keys["service.name"].strs.overflow)

	// A URL that exists is found although its set overflowed.
	want := b.traces[1234].ResourceSpans[0].ScopeSpans[0].Spans[0]
	var u string
	for _, kv := range want.Attributes {
		if kv.Key == "http.url" {
			u = kv.Value.GetStringValue()
		}
	}
	got, _ := searchIDs(t, Open(b.be, b.meta, nil), SearchRequest{All: true, Predicates: []Predicate{{Scope: PredSpan, Key: "http.url", Op: PredEq, Value: PredValue{Type: ValString, Str: u}}}})
	require.Contains(t, got, [16]byte(b.ids[1234]))
	require.Less(t, len(got), 5)
}

func FuzzSearchIndex(f *testing.F) {
	b := writeSearchBlock(f, inmem.New(), searchTestConfig(f), 5, 30)
	x, err := b.r.searchIndex(context.Background())
	require.NoError(f, err)
	enc := x.encode()
	f.Add(enc)
	f.Add(enc[:len(enc)/2])
	f.Add([]byte("RSIX\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := decodeSearchIndex(data)
		if err != nil {
			require.Nil(t, x)
			return
		}
		// What decodes encodes and decodes again.
		_, err = decodeSearchIndex(x.encode())
		require.NoError(t, err)
	})
}

func TestSearchIndexRoundTripAndCorrupt(t *testing.T) {
	be := inmem.New()
	b := writeSearchBlock(t, be, searchTestConfig(t), 5, 30)
	key := SearchIndexKey(b.meta.TenantID, b.meta.BlockID)
	data, err := backend.ReadAll(context.Background(), be, key)
	require.NoError(t, err)
	x, err := decodeSearchIndex(data)
	require.NoError(t, err)
	require.Equal(t, data, x.encode())

	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 0x40
	require.NoError(t, be.Put(context.Background(), key, bytes.NewReader(bad), int64(len(bad))))
	_, err = Open(be, b.meta, nil).Search(context.Background(), SearchRequest{}, func([16]byte, *tracev1.TracesData) bool { return true })
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorIs(t, Open(be, b.meta, nil).TagNames(context.Background(), func(TagScope, string) {}), ErrCorrupt)
}
