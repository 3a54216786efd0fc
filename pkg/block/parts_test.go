package block

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// genTrickyTrace builds a trace whose neighbouring ResourceSpans and
// ScopeSpans often have equal headers (the cuts splitTrace must avoid),
// with nil and empty resources and scopes, and empty groups.
func genTrickyTrace(rng *rand.Rand, id []byte, maxSpans int) *tracev1.TracesData {
	resources := []*resourcev1.Resource{nil, {}, {Attributes: []*commonv1.KeyValue{strKV("service.name", "a")}}, {Attributes: []*commonv1.KeyValue{strKV("service.name", "b")}}}
	scopes := []*commonv1.InstrumentationScope{nil, {}, {Name: "s1"}, {Name: "s2", Version: "1"}}
	td := &tracev1.TracesData{}
	spans := 1 + rng.IntN(maxSpans)
	for spans > 0 {
		rs := &tracev1.ResourceSpans{Resource: resources[rng.IntN(len(resources))], SchemaUrl: []string{"", "u"}[rng.IntN(2)]}
		for k := rng.IntN(4); k > 0 && spans > 0; k-- {
			ss := &tracev1.ScopeSpans{Scope: scopes[rng.IntN(len(scopes))], SchemaUrl: []string{"", "v"}[rng.IntN(2)]}
			for m := rng.IntN(5); m > 0 && spans > 0; m-- {
				ss.Spans = append(ss.Spans, &tracev1.Span{TraceId: id, SpanId: randBytes(rng, 8), Name: fmt.Sprint("op", rng.IntN(3)), StartTimeUnixNano: 1e18 + uint64(rng.IntN(1e9)), EndTimeUnixNano: 1e18 + 2e9})
				spans--
			}
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		td.ResourceSpans = append(td.ResourceSpans, rs)
	}
	return td
}

func TestSplitJoinLossless(t *testing.T) {
	rng := seededRand(t, 11)
	id := randBytes(rng, TraceIDSize)
	for i := range 500 {
		td := genTrickyTrace(rng, id, 60)
		if i%50 == 0 {
			td = genExoticTrace(id)
		}
		want := proto.Clone(td)
		limit := 1 + rng.IntN(8)
		parts := splitTrace(td, limit)
		total := 0
		for _, p := range parts {
			total += countTraceSpans(p)
		}
		require.Equal(t, countTraceSpans(want.(*tracev1.TracesData)), total)
		// Join copies that went through the wire, as readers get them.
		got := &tracev1.TracesData{}
		for k, p := range parts {
			b, err := proto.Marshal(p)
			require.NoError(t, err)
			q := &tracev1.TracesData{}
			require.NoError(t, proto.Unmarshal(b, q))
			if k == 0 {
				got = q
			} else {
				joinPart(got, q)
			}
		}
		requireProtoEqual(t, want, got)
	}
}

func TestSplitCutsInsideScopeSpans(t *testing.T) {
	// One ResourceSpans with one ScopeSpans of 10 spans: cut every 3 spans.
	id := bytes.Repeat([]byte{1}, TraceIDSize)
	ss := &tracev1.ScopeSpans{Scope: &commonv1.InstrumentationScope{Name: "s"}}
	for i := range 10 {
		ss.Spans = append(ss.Spans, &tracev1.Span{TraceId: id, SpanId: []byte{byte(i), 0, 0, 0, 0, 0, 0, 1}})
	}
	td := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{ss}}}}
	parts := splitTrace(td, 3)
	require.Len(t, parts, 4)
	for i, p := range parts {
		require.Equal(t, min(3, 10-3*i), countTraceSpans(p))
	}
	// Ten ResourceSpans of one span each, all with the same header: the
	// cuts fall before a span, after an empty copy of its headers that
	// keeps the join from merging two ResourceSpans.
	same := &tracev1.TracesData{}
	for i := range 10 {
		same.ResourceSpans = append(same.ResourceSpans, &tracev1.ResourceSpans{ScopeSpans: []*tracev1.ScopeSpans{{Spans: ss.Spans[i : i+1]}}})
	}
	want := proto.Clone(same)
	parts = splitTrace(same, 3)
	require.Len(t, parts, 4)
	got := parts[0]
	for _, p := range parts[1:] {
		require.LessOrEqual(t, countTraceSpans(p), 3)
		joinPart(got, p)
	}
	requireProtoEqual(t, want, got)
	require.Len(t, splitTrace(td, 0), 1)
	require.Len(t, splitTrace(td, 10), 1)
}

// TestMultiRowTraces writes big traces as several rows across row groups
// and reads them back whole with every read path.
func TestMultiRowTraces(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.MaxSpansPerRow = 7
	cfg.RowGroupSizeBytes = 4 << 10 // parts of a trace spread over row groups
	cfg.PageSizeBytes = 1 << 10
	rng := seededRand(t, 12)
	ids := genTraceIDs(rng, 120)
	traces := make([]*tracev1.TracesData, len(ids))
	spans := 0
	for i, id := range ids {
		switch i % 3 {
		case 0:
			traces[i] = genRealisticTrace(rng, id, 1_700_000_000_000_000_000)
		case 1:
			traces[i] = genTrickyTrace(rng, id, 40)
		default:
			traces[i] = genExoticTrace(id)
		}
		spans += countTraceSpans(traces[i])
	}
	be := newMemBackend()
	m := writeBlockOf(t, be, cfg, 0, ids, traces)
	require.Greater(t, m.TotalObjects, len(ids), "some traces are stored as several rows")
	require.Greater(t, m.RowGroups, 3)
	require.Equal(t, int64(spans), m.TotalSpans)

	r := Open(be, m, NewCache(64<<20))
	for i, id := range ids {
		got, err := r.FindTraceByID(ctx, id)
		require.NoError(t, err)
		requireProtoEqual(t, traces[i], got)
	}
	gotIDs, gotTraces := collect(t, r)
	require.Equal(t, ids, gotIDs)
	for i := range ids {
		requireProtoEqual(t, traces[i], gotTraces[i])
	}

	// Copying row by row (AddRow, then AddPartRow for the rest of a
	// trace) into a block that does not split gives the same traces.
	cfg2 := testConfig(t)
	cfg2.MaxSpansPerRow = 0
	w, err := NewWriter(ctx, be, cfg2, testTenant, uuid.New(), 1, m.TotalObjects, t.TempDir())
	require.NoError(t, err)
	rr, err := Open(be, m, nil).Rows(ctx)
	require.NoError(t, err)
	var last []byte
	for {
		id, row, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if bytes.Equal(id, last) {
			require.NoError(t, w.AddPartRow(row))
		} else {
			require.NoError(t, w.AddRow(row))
		}
		last = append(last[:0], id...)
	}
	require.NoError(t, rr.Close())
	m2, err := w.Close(ctx)
	require.NoError(t, err)
	require.Equal(t, m.TotalObjects, m2.TotalObjects)
	require.Equal(t, m.TotalSpans, m2.TotalSpans)
	gotIDs, gotTraces = collect(t, Open(be, m2, nil))
	require.Equal(t, ids, gotIDs)
	for i := range ids {
		requireProtoEqual(t, traces[i], gotTraces[i])
	}
}

func TestAddPart(t *testing.T) {
	ctx := context.Background()
	be := newMemBackend()
	w, err := NewWriter(ctx, be, testConfig(t), testTenant, uuid.New(), 0, 2, t.TempDir())
	require.NoError(t, err)
	id := bytes.Repeat([]byte{2}, TraceIDSize)
	a := genRealisticTrace(seededRand(t, 1), id, 1_700_000_000_000_000_000)
	b := genRealisticTrace(seededRand(t, 2), id, 1_700_000_000_000_000_000)
	require.ErrorIs(t, w.AddPart(id, a), ErrOutOfOrder, "no trace to continue")
	require.NoError(t, w.Add(id, a))
	require.ErrorIs(t, w.Add(id, b), ErrOutOfOrder, "Add never continues a trace")
	require.ErrorIs(t, w.AddPart(bytes.Repeat([]byte{3}, TraceIDSize), b), ErrOutOfOrder)
	require.NoError(t, w.AddPart(id, b))
	m, err := w.Close(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, m.TotalObjects)
	want := proto.Clone(a).(*tracev1.TracesData)
	joinPart(want, proto.Clone(b).(*tracev1.TracesData))
	got, err := Open(be, m, nil).FindTraceByID(ctx, id)
	require.NoError(t, err)
	requireProtoEqual(t, want, got)
}

// FuzzSplitJoin: for any trace, joining the parts splitTrace cuts gives
// back the trace (as it comes back from the wire).
func FuzzSplitJoin(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	id := randBytes(rng, TraceIDSize)
	for range 4 {
		b, err := proto.Marshal(genTrickyTrace(rng, id, 30))
		require.NoError(f, err)
		f.Add(b, uint8(3))
	}
	b, err := proto.Marshal(genExoticTrace(id))
	require.NoError(f, err)
	f.Add(b, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, limit uint8) {
		td := &tracev1.TracesData{}
		if proto.Unmarshal(data, td) != nil {
			return
		}
		want := proto.Clone(td)
		parts := splitTrace(td, int(limit))
		got := &tracev1.TracesData{}
		for k, p := range parts {
			if limit > 0 && len(parts) > 1 {
				require.LessOrEqual(t, countTraceSpans(p), int(limit))
			}
			b, err := proto.Marshal(p)
			require.NoError(t, err)
			q := &tracev1.TracesData{}
			require.NoError(t, proto.Unmarshal(b, q))
			if k == 0 {
				got = q
			} else {
				joinPart(got, q)
			}
		}
		b1, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
		require.NoError(t, err)
		b2, err := proto.MarshalOptions{Deterministic: true}.Marshal(got)
		require.NoError(t, err)
		require.Equal(t, b1, b2)
	})
}

// TestAddRejectsWholeMultiRowTrace: a big trace that cannot be stored is
// rejected before any of its rows is written, and the writer goes on.
func TestAddRejectsWholeMultiRowTrace(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.MaxSpansPerRow = 2
	be := newMemBackend()
	w, err := NewWriter(ctx, be, cfg, testTenant, uuid.New(), 0, 2, t.TempDir())
	require.NoError(t, err)
	bad := bytes.Repeat([]byte{1}, TraceIDSize)
	ss := &tracev1.ScopeSpans{}
	for i := range 5 {
		ss.Spans = append(ss.Spans, &tracev1.Span{TraceId: bad, SpanId: []byte{byte(i), 1, 1, 1, 1, 1, 1, 1}})
	}
	invalid := &commonv1.AnyValue{Value: &commonv1.AnyValue_ArrayValue{ArrayValue: &commonv1.ArrayValue{Values: []*commonv1.AnyValue{
		{Value: &commonv1.AnyValue_StringValue{StringValue: "\xff"}},
	}}}}
	ss.Spans[4].Attributes = []*commonv1.KeyValue{{Key: "a", Value: invalid}}
	td := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{ss}}}}
	require.Len(t, splitTrace(td, 2), 3)
	require.Error(t, w.Add(bad, td))
	require.Zero(t, w.Len(), "no part written")
	good := bytes.Repeat([]byte{2}, TraceIDSize)
	require.NoError(t, w.Add(good, genRealisticTrace(seededRand(t, 3), good, 1_700_000_000_000_000_000)))
	m, err := w.Close(ctx)
	require.NoError(t, err)
	got, err := Open(be, m, nil).FindTraceByID(ctx, bad)
	require.NoError(t, err)
	require.Nil(t, got)
}
