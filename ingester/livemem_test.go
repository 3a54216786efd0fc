package ingester

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// addLiveTraces indexes n new live traces of parts WAL fragments each, as
// pushes do, without touching the WAL.
func addLiveTraces(inst *instance, seed uint64, n, parts int) {
	frags := make([]fragment, 1)
	for k := range n {
		var id [16]byte
		binary.BigEndian.PutUint64(id[:8], seed)
		binary.BigEndian.PutUint64(id[8:], uint64(k)*0x9e3779b97f4a7c15)
		frags[0] = fragment{id: id, spans: 10, off: 0, n: 2000}
		for p := range parts {
			inst.addFragments(walPos{seg: 1, off: int64(p) * 4096}, frags, 1)
		}
	}
}

// heapPerLiveTrace measures the heap the index takes per live trace for n
// traces of parts fragments each: the heap in use with the index, minus the
// heap once it is dropped, the least of three runs (other goroutines can
// only add noise that raises the figure).
func heapPerLiveTrace(tb testing.TB, ing *Ingester, n, parts int) float64 {
	tb.Helper()
	best := math.Inf(1)
	for range 3 {
		var with, without runtime.MemStats
		inst := newInstance(fmt.Sprintf("mem-%d-%d", n, parts), ing)
		addLiveTraces(inst, 7, n, parts)
		require.Equal(tb, n, len(inst.live))
		runtime.GC()
		runtime.ReadMemStats(&with)
		runtime.KeepAlive(inst)
		inst = nil //nolint:ineffassign,wastedassign // drop the index before measuring again
		runtime.GC()
		runtime.ReadMemStats(&without)
		best = min(best, float64(int64(with.HeapAlloc)-int64(without.HeapAlloc))/float64(n))
	}
	return best
}

// BenchmarkLiveTraceMemory reports the heap one live trace costs in the
// ingester's index (bytes stay in the WAL), for 200,000 live traces: 10,000
// new traces a second for the ~20 s a trace stays live by default.
func BenchmarkLiveTraceMemory(b *testing.B) {
	ing := newTestIngester(b, b.TempDir(), inmem.New(), overrides.Limits{})
	for _, parts := range []int{1, 4} {
		b.Run(fmt.Sprintf("parts=%d", parts), func(b *testing.B) {
			b.ReportAllocs()
			var per float64
			for range b.N {
				per = heapPerLiveTrace(b, ing, 200_000, parts)
			}
			b.ReportMetric(per, "heapB/livetrace")
			b.ReportMetric(float64(liveCost(parts)), "estB/livetrace")
		})
	}
}

// TestLiveTraceCostEstimate keeps the estimate max_live_traces_bytes is
// checked against at or above the measured heap per live trace (so the
// budget never understates memory), and within 2x of it (so it does not
// refuse traffic for nothing). Map growth makes the measured figure vary
// with the count, hence several counts.
func TestLiveTraceCostEstimate(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{})
	for _, n := range []int{30_000, 200_000} {
		for _, parts := range []int{1, 3, 9} {
			got := heapPerLiveTrace(t, ing, n, parts)
			est := float64(liveCost(parts))
			t.Logf("%d live traces of %d parts: %.0f B measured, %.0f B estimated", n, parts, got, est)
			require.GreaterOrEqual(t, est, got, "estimate below the measured cost: raise liveTraceBytes/livePartBytes")
			require.LessOrEqual(t, est, 2*got, "estimate over twice the measured cost")
		}
	}
}

// newTraceBatch builds a push of n new single-span traces.
func newTraceBatch(seed uint64, n int) *rubatopb.PushBytesRequest {
	req := &rubatopb.PushBytesRequest{}
	body := []byte{0x0a, 0x00} // an empty ResourceSpans: the index ignores content
	for k := range n {
		id := make([]byte, 16)
		binary.BigEndian.PutUint64(id[:8], seed)
		binary.BigEndian.PutUint64(id[8:], uint64(k)+1)
		req.Ids, req.Traces, req.Spans = append(req.Ids, id), append(req.Traces, body), append(req.Spans, 1)
	}
	return req
}

func defaultLimits() overrides.Limits {
	var l overrides.Limits
	l.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	return l
}

// TestDefaultLiveTraceBudget pushes 10,000 new traces a second for the 20 s
// a trace stays live by default (200,000 live traces) under the default
// limits: none may be refused. Past that, the budget refuses new traces
// exactly where the estimate says, counts each refusal, and still takes
// spans of traces already live.
func TestDefaultLiveTraceBudget(t *testing.T) {
	lim := defaultLimits()
	require.Zero(t, lim.MaxTracesPerUser, "no count cap by default")
	ing := newTestIngester(t, t.TempDir(), inmem.New(), lim)
	const perPush = 2000
	pushed := 0
	for seed := uint64(1); pushed < 200_000; seed++ {
		resp, err := ing.PushBytes(tenantCtx(), newTraceBatch(seed, perPush))
		require.NoError(t, err)
		require.Empty(t, resp.ErrorsByTrace, "refused after %d live traces", pushed)
		pushed += perPush
	}
	fit := lim.MaxLiveTracesBytes / liveCost(1)
	require.GreaterOrEqual(t, fit, 400_000, "the default holds twice 20 s of 10k new traces/s")
	for seed := uint64(1_000); pushed+perPush <= fit; seed++ {
		resp, err := ing.PushBytes(tenantCtx(), newTraceBatch(seed, perPush))
		require.NoError(t, err)
		require.Empty(t, resp.ErrorsByTrace)
		pushed += perPush
	}
	// The push that crosses the budget: exactly fit-pushed of it are taken.
	resp, err := ing.PushBytes(tenantCtx(), newTraceBatch(99_999, perPush))
	require.NoError(t, err)
	refused := 0
	for _, r := range resp.ErrorsByTrace {
		if r == rubatopb.PushErrorReason_MAX_LIVE_TRACES {
			refused++
		}
	}
	require.Equal(t, perPush-(fit-pushed), refused)
	require.Equal(t, float64(refused), counterValue(t, ing.metrics.rejectedTraces.WithLabelValues("MAX_LIVE_TRACES")))
	inst := ing.getOrCreateInstance("t1")
	require.Equal(t, fit, len(inst.live))
	require.LessOrEqual(t, inst.liveMem, lim.MaxLiveTracesBytes)
	// A trace already live still takes spans.
	resp, err = ing.PushBytes(tenantCtx(), newTraceBatch(1, 1))
	require.NoError(t, err)
	require.Empty(t, resp.ErrorsByTrace)
	// Once swept out of the live set, new traces are taken again.
	inst.sweep(time.Now(), true)
	require.Zero(t, inst.liveMem)
	resp, err = ing.PushBytes(tenantCtx(), newTraceBatch(100_000, 10))
	require.NoError(t, err)
	require.Empty(t, resp.ErrorsByTrace)
}

// TestMaxTracesPerUserStillCaps checks Tempo's count cap applies on top of
// the memory budget.
func TestMaxTracesPerUserStillCaps(t *testing.T) {
	lim := defaultLimits()
	lim.MaxTracesPerUser = 1500
	ing := newTestIngester(t, t.TempDir(), inmem.New(), lim)
	resp, err := ing.PushBytes(tenantCtx(), newTraceBatch(1, 2000))
	require.NoError(t, err)
	refused := 0
	for _, r := range resp.ErrorsByTrace {
		if r == rubatopb.PushErrorReason_MAX_LIVE_TRACES {
			refused++
		}
	}
	require.Equal(t, 500, refused)
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}
