package compactor_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
)

// universe is the ground truth of a randomized test: every span of every
// trace, by trace ID and span ID.
type universe struct {
	base   time.Time
	traces map[string]map[uint64]*tracev1.Span // trace ID → span ID → span
	svc    map[uint64]string
}

func newUniverse(base time.Time) *universe {
	return &universe{base: base, traces: map[string]map[uint64]*tracev1.Span{}, svc: map[uint64]string{}}
}

// span returns span n of trace id, creating it the first time.
func (u *universe) span(rng *rand.Rand, id []byte, n int) *tracev1.Span {
	spans := u.traces[string(id)]
	if spans == nil {
		spans = map[uint64]*tracev1.Span{}
		u.traces[string(id)] = spans
	}
	sid := binary.BigEndian.Uint64(id[8:]) ^ uint64(n+1)*0x9e3779b97f4a7c15
	if sid == 0 {
		sid = 1
	}
	if sp, ok := spans[sid]; ok {
		return sp
	}
	start := uint64(u.base.UnixNano()) + uint64(rng.IntN(1e9))
	sp := &tracev1.Span{
		TraceId: bytes.Clone(id), SpanId: binary.BigEndian.AppendUint64(nil, sid),
		Name: fmt.Sprintf("op-%d", rng.IntN(5)), Kind: tracev1.Span_SPAN_KIND_SERVER,
		StartTimeUnixNano: start, EndTimeUnixNano: start + uint64(rng.IntN(1e6)),
		Attributes: []*commonv1.KeyValue{{Key: "http.url", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: fmt.Sprintf("/x/%d", rng.IntN(1000))}}}},
	}
	spans[sid] = sp
	u.svc[sid] = []string{"a", "b", "c"}[rng.IntN(3)]
	return sp
}

// traceOf builds an OTLP trace of the given spans, grouped by service.
func (u *universe) traceOf(spans []*tracev1.Span) *tracev1.TracesData {
	td := &tracev1.TracesData{}
	by := map[string]*tracev1.ScopeSpans{}
	for _, sp := range spans {
		svc := u.svc[binary.BigEndian.Uint64(sp.SpanId)]
		ss := by[svc]
		if ss == nil {
			ss = &tracev1.ScopeSpans{Scope: &commonv1.InstrumentationScope{Name: "lib"}}
			by[svc] = ss
			td.ResourceSpans = append(td.ResourceSpans, &tracev1.ResourceSpans{
				Resource:   &resourcev1.Resource{Attributes: []*commonv1.KeyValue{{Key: "service.name", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: svc}}}}},
				ScopeSpans: []*tracev1.ScopeSpans{ss},
			})
		}
		ss.Spans = append(ss.Spans, proto.Clone(sp).(*tracev1.Span))
	}
	return td
}

// randomBlocks writes n blocks of tenant: trace IDs come from a pool of
// poolSize, so blocks overlap; each block holds a random subset of each
// chosen trace's spans, so copies of a span recur across blocks (replicas)
// and traces are split across blocks (late spans).
func (u *universe) randomBlocks(t testing.TB, rng *rand.Rand, be backend.Backend, tenantID string, n, poolSize, perBlock int) []*block.Meta {
	t.Helper()
	pool := make([][]byte, poolSize)
	for i := range pool {
		pool[i] = make([]byte, 16)
		for j := range pool[i] {
			pool[i][j] = byte(rng.Uint32())
		}
	}
	var metas []*block.Meta
	for range n {
		picked := map[int]bool{}
		for range perBlock {
			picked[rng.IntN(poolSize)] = true
		}
		var ids [][]byte
		for i := range picked {
			ids = append(ids, pool[i])
		}
		slices.SortFunc(ids, bytes.Compare)
		traces := make([]*tracev1.TracesData, len(ids))
		for i, id := range ids {
			var spans []*tracev1.Span
			for s := range 6 {
				if rng.IntN(2) == 0 {
					spans = append(spans, u.span(rng, id, s))
				}
			}
			if len(spans) == 0 {
				spans = append(spans, u.span(rng, id, 0))
			}
			traces[i] = u.traceOf(spans)
		}
		metas = append(metas, writeBlock(t, be, tenantID, 0, ids, traces))
	}
	return metas
}

// smallBlockConfig makes several row groups out of a few hundred traces.
func smallBlockConfig() block.Config {
	return block.Config{BloomFP: 0.01, BloomShardSizeBytes: 1024, RowGroupSizeBytes: 16384, PageSizeBytes: 4096}
}

func writeBlock(t testing.TB, be backend.Backend, tenantID string, lvl uint8, ids [][]byte, traces []*tracev1.TracesData) *block.Meta {
	t.Helper()
	ctx := context.Background()
	w, err := block.NewWriter(ctx, be, smallBlockConfig(), tenantID, uuid.New(), lvl, len(ids), t.TempDir())
	require.NoError(t, err)
	for i, id := range ids {
		require.NoError(t, w.Add(id, traces[i]))
	}
	m, err := w.Close(ctx)
	require.NoError(t, err)
	return m
}

// requireExact checks that got, a querier's answer, holds exactly the
// universe's spans of id, each once.
func (u *universe) requireExact(t testing.TB, id []byte, got *tracev1.TracesData) {
	t.Helper()
	want := u.traces[string(id)]
	seen := map[uint64]bool{}
	for _, rs := range got.GetResourceSpans() {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				sid := binary.BigEndian.Uint64(sp.SpanId)
				require.False(t, seen[sid], "trace %x: span %x returned twice", id, sid)
				seen[sid] = true
				w, ok := want[sid]
				require.True(t, ok, "trace %x: unexpected span %x", id, sid)
				if w.Status == nil {
					// The querier answers every span with a status
					// (combine.FillRequired).
					w = proto.Clone(w).(*tracev1.Span)
					w.Status = &tracev1.Status{}
				}
				require.True(t, proto.Equal(w, sp), "trace %x: span %x differs", id, sid)
			}
		}
	}
	require.Len(t, seen, len(want), "trace %x: span count", id)
}
