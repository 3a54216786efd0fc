package compactor

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/model/combine"
)

// spanMultiset counts a trace's spans by ID, kind and name (names are
// unique per generated span, shared by its replicas).
func spanMultiset(td *tracev1.TracesData) map[string]int {
	out := map[string]int{}
	for _, rs := range td.GetResourceSpans() {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				out[fmt.Sprintf("%x/%d/%s", sp.SpanId, sp.Kind, sp.Name)]++
			}
		}
	}
	return out
}

// TestSpanIdentityOneRule: the compactor drops exactly the spans the read
// path's Combiner drops, whichever merge path a trace takes (one row per
// copy, combined decoded; or big traces stored as several rows, combined
// part by part without decoding), for span IDs that are empty, all zero
// (8 and 16 bytes), 16 bytes long, shared by a client and a server span, or
// replicated across copies. Both paths ask combine.SpanSet; a compactor
// with its own rule (the one that drifted: zero and empty IDs deduplicated)
// loses spans here.
func TestSpanIdentityOneRule(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(12) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 77))
			cfg := testBlockConfig()
			if seed%2 == 1 {
				cfg.MaxSpansPerRow = 3 // most traces take several rows
			}
			be := inmem.New()
			const nTraces = 12
			ids := make([][]byte, nTraces)
			for i := range ids {
				ids[i] = []byte(fmt.Sprintf("trace%02d-%08x", i, rng.Uint32()))
			}
			slices.SortFunc(ids, bytes.Compare)
			// Span templates per trace: each has an identity and a unique
			// name; copies of the trace take random templates (replicas).
			type tmpl struct {
				id   []byte
				kind tracev1.Span_SpanKind
				name string
			}
			templates := make([][]tmpl, nTraces)
			for i := range templates {
				for s := range 4 + rng.IntN(8) {
					var sid []byte
					switch rng.IntN(7) {
					case 0:
						sid = nil
					case 1:
						sid = make([]byte, 8)
					case 2:
						sid = make([]byte, 16)
					case 3:
						sid = fmt.Appendf(nil, "%016x", rng.Uint64()) // 16 bytes
					default:
						sid = fmt.Appendf(nil, "%08x", rng.Uint32()) // 8 bytes
					}
					kind := tracev1.Span_SpanKind(rng.IntN(6))
					templates[i] = append(templates[i], tmpl{sid, kind, fmt.Sprintf("s%d", s)})
					if rng.IntN(4) == 0 && len(sid) == 8 {
						// The server half of a shared Zipkin span: same ID, other kind.
						other := tracev1.Span_SPAN_KIND_SERVER
						if kind == other {
							other = tracev1.Span_SPAN_KIND_CLIENT
						}
						templates[i] = append(templates[i], tmpl{sid, other, fmt.Sprintf("s%d-shared", s)})
					}
				}
			}
			copies := make([][]*tracev1.TracesData, nTraces) // per trace, in input order
			var inputs []*block.Meta
			for range 3 {
				w, err := block.NewWriter(ctx, be, cfg, "t", uuid.New(), 0, nTraces, t.TempDir())
				require.NoError(t, err)
				for i, id := range ids {
					if rng.IntN(3) == 0 {
						continue
					}
					ss := &tracev1.ScopeSpans{}
					for _, tp := range templates[i] {
						if rng.IntN(3) > 0 {
							ss.Spans = append(ss.Spans, &tracev1.Span{TraceId: id, SpanId: tp.id, Kind: tp.kind, Name: tp.name,
								StartTimeUnixNano: 1e18, EndTimeUnixNano: 1e18 + 5})
						}
					}
					if len(ss.Spans) == 0 {
						continue
					}
					td := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{ss}}}}
					copies[i] = append(copies[i], td)
					require.NoError(t, w.Add(id, td))
				}
				m, err := w.Close(ctx)
				require.NoError(t, err)
				inputs = append(inputs, m)
			}
			for _, rows := range []bool{true, false} {
				m, _ := mergeBlocks(t, be, cfg, inputs, rows)
				got := readAll(t, be, m)
				for i, id := range ids {
					if len(copies[i]) == 0 {
						require.NotContains(t, got, string(id))
						continue
					}
					want := spanMultiset(combine.Traces(copies[i]...))
					require.Equal(t, want, spanMultiset(got[string(id)]), "rows=%v trace %s (%d copies)", rows, id, len(copies[i]))
				}
			}
		})
	}
}
