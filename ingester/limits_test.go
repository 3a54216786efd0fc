package ingester

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
)

var fragSeq atomic.Uint64

// fragmentBody encodes one fragment of trace tid with spans spans of unique
// IDs and a fixed size (so byte limits divide evenly).
func fragmentBody(t testing.TB, tid []byte, spans int) []byte {
	t.Helper()
	ss := &tracev1.ScopeSpans{}
	for range spans {
		ss.Spans = append(ss.Spans, &tracev1.Span{TraceId: tid, SpanId: binary.BigEndian.AppendUint64(nil, fragSeq.Add(1)),
			Name: "op", StartTimeUnixNano: 1e18, EndTimeUnixNano: 1e18 + 1})
	}
	b, err := proto.Marshal(&tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{ss}}}})
	require.NoError(t, err)
	return b
}

func traceID(hi, lo uint64) []byte {
	id := make([]byte, 16)
	binary.BigEndian.PutUint64(id[:8], hi)
	binary.BigEndian.PutUint64(id[8:], lo)
	return id
}

func findID(t testing.TB, ing *Ingester, tid []byte) int {
	t.Helper()
	resp, err := ing.FindTraceByID(tenantCtx(), &rubatopb.FindTraceByIDRequest{TraceID: tid})
	require.NoError(t, err)
	n := 0
	for _, rs := range resp.Trace.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	return n
}

// TestLimitsExactUnderConcurrency: 64 pushers at once against each limit.
// Exactly as many new traces (or bytes of one trace) as the limit allows
// are admitted, never more, every refusal is reported to its pusher once
// (the spans the distributor adds to rubato_discarded_spans_total) and
// counted once in rubato_ingester_rejected_traces_total, every admitted
// span is findable and no refused one is.
func TestLimitsExactUnderConcurrency(t *testing.T) {
	const (
		pushers  = 64
		pushes   = 8 // per pusher
		perPush  = 3 // traces per push
		spans    = 2 // per fragment
		allowed  = 100
		bigTrace = 4 // traces pushed by every pusher in the per-trace case
	)
	body := len(fragmentBody(t, traceID(1, 1), spans))
	cases := []struct {
		name   string
		limits overrides.Limits
		reason rubatopb.PushErrorReason
		// ids gives the trace IDs of push p of pusher g.
		ids func(g, p int) [][]byte
		// want is the number of fragments admitted per distinct trace
		// (per-trace case) or of new traces (live-trace cases).
		check func(t *testing.T, ing *Ingester, admitted map[string]int)
	}{
		{
			name:   "max_traces_per_user",
			limits: overrides.Limits{MaxTracesPerUser: allowed},
			reason: rubatopb.PushErrorReason_MAX_LIVE_TRACES,
			ids:    newIDs,
			check: func(t *testing.T, ing *Ingester, admitted map[string]int) {
				require.Equal(t, allowed, len(admitted), "traces admitted")
				require.Equal(t, allowed, len(ing.getOrCreateInstance("t1").live))
			},
		},
		{
			name: "max_live_traces_bytes",
			// Room for allowed single-fragment traces, not one more.
			limits: overrides.Limits{MaxLiveTracesBytes: (allowed+1)*liveCost(1) - 1},
			reason: rubatopb.PushErrorReason_MAX_LIVE_TRACES,
			ids:    newIDs,
			check: func(t *testing.T, ing *Ingester, admitted map[string]int) {
				require.Equal(t, allowed, len(admitted), "traces admitted")
				inst := ing.getOrCreateInstance("t1")
				require.Equal(t, allowed, len(inst.live))
				require.Equal(t, allowed*liveCost(1), inst.liveMem)
			},
		},
		{
			name: "max_bytes_per_trace",
			// Room for allowed fragments of each trace, not one more.
			limits: overrides.Limits{MaxBytesPerTrace: (allowed+1)*body - 1},
			reason: rubatopb.PushErrorReason_TRACE_TOO_LARGE,
			ids: func(g, p int) [][]byte {
				// Every pusher appends to the same bigTrace traces.
				out := make([][]byte, bigTrace)
				for k := range out {
					out[k] = traceID(7, uint64(k))
				}
				return out
			},
			check: func(t *testing.T, ing *Ingester, admitted map[string]int) {
				require.Equal(t, bigTrace, len(admitted))
				inst := ing.getOrCreateInstance("t1")
				for id, n := range admitted {
					require.Equal(t, allowed, n, "fragments admitted to trace %x", id)
					require.Equal(t, allowed*body, inst.sizes[[16]byte([]byte(id))])
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ing := newTestIngester(t, t.TempDir(), inmem.New(), tc.limits)
			var (
				mu        sync.Mutex
				admitted  = map[string]int{} // trace ID → fragments admitted
				refused   int                // fragments refused, as pushers were told
				discarded int                // spans of refused fragments
				total     int
			)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for g := range pushers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for p := range pushes {
						req := &rubatopb.PushBytesRequest{}
						for _, id := range tc.ids(g, p) {
							req.Ids = append(req.Ids, id)
							req.Traces = append(req.Traces, fragmentBody(t, id, spans))
							req.Spans = append(req.Spans, spans)
						}
						resp, err := ing.PushBytes(tenantCtx(), req)
						if !assertNoError(t, err) {
							return
						}
						mu.Lock()
						total += len(req.Ids)
						for k, id := range req.Ids {
							r := rubatopb.PushErrorReason_NO_ERROR
							if len(resp.ErrorsByTrace) > 0 {
								r = resp.ErrorsByTrace[k]
							}
							switch r {
							case rubatopb.PushErrorReason_NO_ERROR:
								admitted[string(id)]++
							case tc.reason:
								refused++
								discarded += int(req.Spans[k])
							default:
								t.Errorf("unexpected reason %v", r)
							}
						}
						mu.Unlock()
					}
				}()
			}
			close(start)
			wg.Wait()
			require.False(t, t.Failed())

			tc.check(t, ing, admitted)
			fragments := 0
			for _, n := range admitted {
				fragments += n
			}
			require.Equal(t, total, fragments+refused)
			require.Equal(t, float64(refused), counterValue(t, ing.metrics.rejectedTraces.WithLabelValues(tc.reason.String())), "each refusal counted once")
			require.Equal(t, refused*spans, discarded)
			// Admitted spans are all stored; refused ones are not.
			for id, n := range admitted {
				require.Equal(t, n*spans, findID(t, ing, []byte(id)))
			}
			inst := ing.getOrCreateInstance("t1")
			inst.mu.RLock()
			defer inst.mu.RUnlock()
			require.Zero(t, pinCount(inst), "no reservation left pinned")
			for _, lt := range inst.live {
				require.Zero(t, lt.inflight)
			}
		})
	}
}

// newIDs gives fresh trace IDs, distinct across pushers and pushes.
func newIDs(g, p int) [][]byte {
	out := make([][]byte, 3)
	for k := range out {
		out[k] = traceID(uint64(g)+1, uint64(p*3+k))
	}
	return out
}

func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Errorf("push: %v", err)
		return false
	}
	return true
}

// failingWAL fails every append.
type failingWAL struct{ walLog }

func (failingWAL) append([]byte) (walPos, error) { return walPos{}, errors.New("disk on fire") }

// TestReservationReleasedOnFailedAppend: a push whose WAL append fails
// gives back all it reserved: no live trace, no memory, no bytes, no pin.
func TestReservationReleasedOnFailedAppend(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{MaxTracesPerUser: 1, MaxBytesPerTrace: 1 << 20})
	require.Empty(t, pushTrace(t, ing, 1, 2).ErrorsByTrace)
	inst := ing.getOrCreateInstance("t1")
	id1 := [16]byte{1}
	before := inst.sizes[id1]
	real := ing.wal
	ing.wal = failingWAL{real}
	tid := make([]byte, 16)
	tid[0] = 1
	_, err := ing.PushBytes(tenantCtx(), &rubatopb.PushBytesRequest{Ids: [][]byte{tid}, Traces: [][]byte{fragmentBody(t, tid, 3)}, Spans: []uint32{3}})
	require.Error(t, err)
	ing.wal = real
	require.Len(t, inst.live, 1)
	require.Equal(t, liveCost(1), inst.liveMem)
	require.Equal(t, before, inst.sizes[id1])
	require.Zero(t, pinCount(inst))
	require.Zero(t, inst.live[id1].inflight)

	// A new trace whose append fails does not hold a live-trace slot.
	inst.sweep(time.Now(), true)
	ing.wal = failingWAL{real}
	tid[0] = 2
	_, err = ing.PushBytes(tenantCtx(), &rubatopb.PushBytesRequest{Ids: [][]byte{tid}, Traces: [][]byte{fragmentBody(t, tid, 1)}, Spans: []uint32{1}})
	require.Error(t, err)
	ing.wal = real
	require.Empty(t, inst.live)
	require.Zero(t, inst.liveMem)
	require.NotContains(t, inst.sizes, [16]byte{2})
	require.Empty(t, pushTrace(t, ing, 3, 1).ErrorsByTrace, "the slot is free")
}

// TestTraceSizeKeptAcrossBlockCut: max_bytes_per_trace counts a trace's
// bytes across a block cut, for sizeMemoryIdlePeriods × trace_idle_period
// after it; then the memory is given back.
func TestTraceSizeKeptAcrossBlockCut(t *testing.T) {
	tid := traceID(9, 9)
	body := len(fragmentBody(t, tid, 2))
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{MaxBytesPerTrace: 3 * body})
	push := func() rubatopb.PushErrorReason {
		resp, err := ing.PushBytes(tenantCtx(), &rubatopb.PushBytesRequest{Ids: [][]byte{tid}, Traces: [][]byte{fragmentBody(t, tid, 2)}, Spans: []uint32{2}})
		require.NoError(t, err)
		if len(resp.ErrorsByTrace) == 0 {
			return rubatopb.PushErrorReason_NO_ERROR
		}
		return resp.ErrorsByTrace[0]
	}
	require.Equal(t, rubatopb.PushErrorReason_NO_ERROR, push())
	require.Equal(t, rubatopb.PushErrorReason_NO_ERROR, push())
	ing.tick(context.Background(), true) // cut into a complete block
	ing.flushWG.Wait()
	inst := ing.getOrCreateInstance("t1")
	require.Len(t, inst.complete, 1)
	require.Empty(t, inst.sizes, "no part of the trace is live or in a head")
	require.Equal(t, rubatopb.PushErrorReason_NO_ERROR, push(), "third fragment fits")
	require.Equal(t, rubatopb.PushErrorReason_TRACE_TOO_LARGE, push(), "the count went on across the cut")
	require.Equal(t, 6, findID(t, ing, tid))

	// Cut again: the count moves to recent once more; after
	// sizeMemoryIdlePeriods × trace_idle_period it is forgotten.
	ing.tick(context.Background(), true)
	ing.flushWG.Wait()
	require.Equal(t, rubatopb.PushErrorReason_TRACE_TOO_LARGE, push())
	start := time.Now()
	ing.now = func() time.Time { return start.Add(sizeMemoryIdlePeriods*ing.cfg.TraceIdlePeriod - time.Minute) }
	ing.tick(context.Background(), false)
	require.Len(t, inst.recent, 1, "not yet expired")
	ing.now = func() time.Time { return start.Add(sizeMemoryIdlePeriods*ing.cfg.TraceIdlePeriod + time.Second) }
	ing.tick(context.Background(), false)
	require.Empty(t, inst.recent)
	require.Empty(t, inst.recentQ)
	require.Equal(t, rubatopb.PushErrorReason_NO_ERROR, push(), "a new count after the memory expired")
}

// gatedWAL blocks the first readAt after arm until open is closed.
type gatedWAL struct {
	walLog
	armed   atomic.Bool
	entered chan struct{}
	open    chan struct{}
}

func (g *gatedWAL) readAt(seg uint64, off int64, p []byte) error {
	if g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		<-g.open
	}
	return g.walLog.readAt(seg, off, p)
}

// TestSlowLookupNeverBlocksPush: a lookup stuck reading the WAL while a
// block cut, upload and WAL truncation run must hold up neither the
// truncation nor any push; the segment it reads is kept until it is done
// (then truncated), and it returns the whole trace.
func TestSlowLookupNeverBlocksPush(t *testing.T) {
	dir := t.TempDir()
	ing := newTestIngester(t, dir, inmem.New(), overrides.Limits{})
	require.Empty(t, pushTrace(t, ing, 1, 3).ErrorsByTrace)
	g := &gatedWAL{walLog: ing.wal, entered: make(chan struct{}), open: make(chan struct{})}
	ing.wal = g
	g.armed.Store(true)

	type result struct {
		n   int
		err error
	}
	lookup := make(chan result, 1)
	go func() {
		resp, err := ing.FindTraceByID(tenantCtx(), &rubatopb.FindTraceByIDRequest{TraceID: append([]byte{1}, make([]byte, 15)...)})
		n := 0
		if err == nil {
			for _, rs := range resp.Trace.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					n += len(ss.Spans)
				}
			}
		}
		lookup <- result{n, err}
	}()
	<-g.entered // the lookup is reading, slowly

	// Cut the trace into a block, upload it and truncate the WAL.
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		ing.tick(context.Background(), true)
		ing.flushWG.Wait()
		ing.tick(context.Background(), false)
	}()
	select {
	case <-ticked:
	case <-time.After(500 * time.Millisecond):
		// On the old code truncation now waits for the lookup; pushes
		// must still go through.
	}
	for k := byte(2); k < 12; k++ {
		done := make(chan struct{})
		go func() {
			defer close(done)
			pushTrace(t, ing, k, 1)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			close(g.open)
			t.Fatalf("push %d blocked behind a slow lookup", k)
		}
	}
	select {
	case <-ticked:
	case <-time.After(10 * time.Second):
		close(g.open)
		t.Fatal("WAL truncation waited for a slow lookup")
	}
	inst := ing.getOrCreateInstance("t1")
	require.Len(t, inst.complete, 1, "trace 1 was cut into a block and uploaded")
	kept := segments(t, dir)

	close(g.open)
	res := <-lookup
	require.NoError(t, res.err, "the segment the lookup reads was kept")
	require.Equal(t, 3, res.n, "the lookup read the whole trace")
	require.GreaterOrEqual(t, kept, 2, "the pinned segment was kept")
	require.Zero(t, pinCount(inst))
	ing.tick(context.Background(), true)
	ing.flushWG.Wait()
	ing.tick(context.Background(), false)
	require.Equal(t, 1, segments(t, dir), "unpinned segments are truncated")
	for k := byte(1); k < 12; k++ {
		require.Equal(t, map[bool]int{true: 3, false: 1}[k == 1], find(t, ing, k), fmt.Sprintf("trace %d", k))
	}
}

func pinCount(inst *instance) int {
	inst.pinMu.Lock()
	defer inst.pinMu.Unlock()
	n := 0
	for _, c := range inst.pins {
		n += c
	}
	return n
}

// BenchmarkRecentSizeMemory reports the heap a cut trace's remembered byte
// count takes (recent and recentQ), for 200,000 traces cut in the window.
func BenchmarkRecentSizeMemory(b *testing.B) {
	ing := newTestIngester(b, b.TempDir(), inmem.New(), overrides.Limits{})
	b.ReportAllocs()
	var per float64
	for range b.N {
		const n = 200_000
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		inst := newInstance("recent", ing)
		inst.mu.Lock()
		for k := range n {
			id := [16]byte(traceID(5, uint64(k)*0x9e3779b97f4a7c15))
			inst.sizes[id] = 1000
			inst.settleSizeLocked(id, 1)
		}
		inst.mu.Unlock()
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(inst)
		per = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	}
	b.ReportMetric(per, "heapB/cuttrace")
}

// TestPushesSurviveConcurrentCutsAndTruncation: pushers append and look up
// their own traces while blocks are cut, uploaded and the WAL truncated as
// fast as possible. Every acknowledged span must be found at once and at the
// end: a record appended but not yet indexed is pinned against truncation.
func TestPushesSurviveConcurrentCutsAndTruncation(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{})
	const pushers, traces = 8, 50
	stop := make(chan struct{})
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ing.tick(context.Background(), true)
			ing.flushWG.Wait()
			ing.tick(context.Background(), false)
		}
	}()
	count := func(tid []byte) (int, error) {
		resp, err := ing.FindTraceByID(tenantCtx(), &rubatopb.FindTraceByIDRequest{TraceID: tid})
		if err != nil {
			return 0, err
		}
		n := 0
		for _, rs := range resp.Trace.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				n += len(ss.Spans)
			}
		}
		return n, nil
	}
	var wg sync.WaitGroup
	for g := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range traces {
				tid := traceID(uint64(g)+100, uint64(k))
				for frag := 1; frag <= 2; frag++ {
					_, err := ing.PushBytes(tenantCtx(), &rubatopb.PushBytesRequest{Ids: [][]byte{tid}, Traces: [][]byte{fragmentBody(t, tid, 1)}, Spans: []uint32{1}})
					if err != nil {
						t.Errorf("push: %v", err)
						return
					}
					if n, err := count(tid); err != nil || n != frag {
						t.Errorf("trace %x after %d acknowledged pushes: %d spans, %v", tid, frag, n, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-ticked
	require.False(t, t.Failed())
	for g := range pushers {
		for k := range traces {
			require.Equal(t, 2, findID(t, ing, traceID(uint64(g)+100, uint64(k))))
		}
	}
}

// gatedAppendWAL holds every append, after it is written, until open is
// closed.
type gatedAppendWAL struct {
	walLog
	appended chan struct{}
	open     chan struct{}
}

func (g *gatedAppendWAL) append(rec []byte) (walPos, error) {
	pos, err := g.walLog.append(rec)
	g.appended <- struct{}{}
	<-g.open
	return pos, err
}

// TestAppendedRecordPinnedUntilIndexed: a record in the WAL but not yet
// indexed (its push between append and commit) survives a block cut, an
// upload and a WAL truncation that run meanwhile, without holding them up,
// and is found once the push is acknowledged.
func TestAppendedRecordPinnedUntilIndexed(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{})
	require.Empty(t, pushTrace(t, ing, 1, 1).ErrorsByTrace)
	g := &gatedAppendWAL{walLog: ing.wal, appended: make(chan struct{}, 1), open: make(chan struct{})}
	ing.wal = g
	tid := traceID(42, 42)
	pushed := make(chan error, 1)
	go func() {
		_, err := ing.PushBytes(tenantCtx(), &rubatopb.PushBytesRequest{Ids: [][]byte{tid}, Traces: [][]byte{fragmentBody(t, tid, 2)}, Spans: []uint32{2}})
		pushed <- err
	}()
	<-g.appended
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		ing.tick(context.Background(), true) // cuts trace 1, rotates the WAL
		ing.flushWG.Wait()
		ing.tick(context.Background(), false) // truncates below the pin only
	}()
	select {
	case <-ticked:
	case <-time.After(10 * time.Second):
		close(g.open)
		t.Fatal("cut and truncation waited for a push")
	}
	close(g.open)
	require.NoError(t, <-pushed)
	ing.wal = g.walLog
	require.Equal(t, 2, findID(t, ing, tid), "the acknowledged record was kept")
	require.Equal(t, 1, find(t, ing, 1))
}
