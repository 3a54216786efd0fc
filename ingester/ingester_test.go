package ingester

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// flakyBackend fails every Put while down is set.
type flakyBackend struct {
	backend.Backend
	down atomic.Bool
	puts atomic.Int64
}

func (f *flakyBackend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if f.down.Load() {
		return errors.New("backend down")
	}
	f.puts.Add(1)
	return f.Backend.Put(ctx, key, r, size)
}

func newTestIngester(t testing.TB, dir string, store backend.Backend, limits overrides.Limits, mods ...func(*Config)) *Ingester {
	t.Helper()
	var cfg Config
	f := flag.NewFlagSet("", flag.PanicOnError)
	cfg.RegisterFlagsAndApplyDefaults("", f)
	cfg.LifecyclerConfig.Addr = "127.0.0.1"
	cfg.LifecyclerConfig.ID = "ingester-test"
	cfg.TraceIdlePeriod = time.Hour
	cfg.FlushCheckPeriod = time.Hour // tests drive ticks themselves
	cfg.FlushRetryMaxBackoff = time.Millisecond
	for _, m := range mods {
		m(&cfg)
	}
	var walCfg WALConfig
	walCfg.RegisterFlagsAndApplyDefaults("", f)
	walCfg.Dir = dir
	var blockCfg block.Config
	blockCfg.RegisterFlagsAndApplyDefaults("", f)
	ing, err := New(cfg, walCfg, blockCfg, store, overrides.New(overrides.Config{Defaults: limits}), log.NewNopLogger(), nil)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), ing))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), ing) })
	return ing
}

func tenantCtx() context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-scope-orgid", "t1"))
}

var spanSeq atomic.Uint32

func pushTrace(t *testing.T, ing *Ingester, id byte, spans int) *rubatopb.PushResponse {
	t.Helper()
	tid := make([]byte, 16)
	tid[0] = id
	ss := &tracev1.ScopeSpans{}
	for i := 0; i < spans; i++ {
		ss.Spans = append(ss.Spans, &tracev1.Span{TraceId: tid, SpanId: binary.BigEndian.AppendUint32([]byte{id, 1, 1, 1}, spanSeq.Add(1)), Name: "op",
			StartTimeUnixNano: 1e18, EndTimeUnixNano: 1e18 + 1,
			Attributes: []*commonv1.KeyValue{{Key: "k", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: "v"}}}}})
	}
	b, err := proto.Marshal(&tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{ss}}}})
	require.NoError(t, err)
	resp, err := ing.PushBytes(tenantCtx(), &rubatopb.PushBytesRequest{Ids: [][]byte{tid}, Traces: [][]byte{b}, Spans: []uint32{uint32(spans)}})
	require.NoError(t, err)
	return resp
}

func find(t *testing.T, ing *Ingester, id byte) int {
	t.Helper()
	tid := make([]byte, 16)
	tid[0] = id
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

func segments(t *testing.T, dir string) int {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(dir, "segments"))
	require.NoError(t, err)
	return len(es)
}

// TestWALKeptUntilBlockInBackend: while the backend refuses uploads the
// block and every WAL segment stay, traces stay findable, and a restart
// loses nothing; once the backend is back the block is uploaded and the
// old segments are deleted.
func TestWALKeptUntilBlockInBackend(t *testing.T) {
	dir := t.TempDir()
	store := &flakyBackend{Backend: inmem.New()}
	store.down.Store(true)
	ing := newTestIngester(t, dir, store, overrides.Limits{})
	for i := byte(1); i <= 5; i++ {
		pushTrace(t, ing, i, 3)
	}
	require.Equal(t, 3, find(t, ing, 1), "live")
	ing.tick(context.Background(), true) // cut everything into a block; upload fails
	ing.flushWG.Wait()
	ing.tick(context.Background(), false)
	ing.flushWG.Wait()
	require.Equal(t, 3, find(t, ing, 2), "complete, not flushed")
	require.Zero(t, store.puts.Load())
	require.GreaterOrEqual(t, segments(t, dir), 2, "segments with unflushed data kept")

	// Crash-restart while the backend is down: nothing is lost.
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))
	ing = newTestIngester(t, dir, store, overrides.Limits{})
	for i := byte(1); i <= 5; i++ {
		require.Equal(t, 3, find(t, ing, i), "after restart, trace %d", i)
	}

	store.down.Store(false)
	ing.tick(context.Background(), true)
	ing.flushWG.Wait()
	ing.tick(context.Background(), false)
	require.Positive(t, store.puts.Load())
	metas, err := store.List(context.Background(), "t1/")
	require.NoError(t, err)
	require.Len(t, metas, 1, "one block in the backend")
	require.Equal(t, 1, segments(t, dir), "only the active segment is left")
	require.Equal(t, 3, find(t, ing, 4), "still readable locally after flush")
}

// TestLimits: live-trace and trace-size limits refuse traces with a reason
// and accept the rest.
func TestLimits(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{MaxTracesPerUser: 2, MaxBytesPerTrace: 400})
	require.Empty(t, pushTrace(t, ing, 1, 1).ErrorsByTrace)
	require.Empty(t, pushTrace(t, ing, 2, 1).ErrorsByTrace)
	require.Equal(t, []rubatopb.PushErrorReason{rubatopb.PushErrorReason_MAX_LIVE_TRACES}, pushTrace(t, ing, 3, 1).ErrorsByTrace)
	require.Empty(t, pushTrace(t, ing, 1, 1).ErrorsByTrace, "appending to a live trace is fine")
	require.Equal(t, []rubatopb.PushErrorReason{rubatopb.PushErrorReason_TRACE_TOO_LARGE}, pushTrace(t, ing, 2, 20).ErrorsByTrace)
	require.Equal(t, 2, find(t, ing, 1))
	require.Equal(t, 0, find(t, ing, 3))
}
