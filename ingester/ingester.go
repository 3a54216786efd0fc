package ingester

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rubatodb/rubato/ingester/client"
	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/model/combine"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/tenant"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Ingester is the ingester service. It also implements rubatopb.IngesterServer.
type Ingester struct {
	services.Service
	rubatopb.UnimplementedIngesterServer

	cfg       Config
	blockCfg  block.Config
	walCfg    WALConfig
	store     backend.Backend
	overrides *overrides.Overrides
	logger    log.Logger
	reg       prometheus.Registerer
	metrics   *metrics
	now       func() time.Time

	lifecycler *ring.Lifecycler
	replicas   Replicas // the other replicas, with replication (replicas.go)
	wal        walLog
	local      backend.Backend // complete blocks before and shortly after flush
	marks      *flushMarks     // which WAL fragments each cut block holds (flushmark.go)
	cache      *block.Cache
	tmpDir     string

	// truncMu serialises WAL truncations. Pushes, lookups and searches do
	// not take it: the WAL positions they use are pinned in their instance
	// (reserve, pinRead), and truncation keeps every pinned segment.
	truncMu sync.Mutex

	instancesMu sync.RWMutex
	instances   map[string]*instance

	lastFlushErr atomic.Pointer[flushError]
	inflight     atomic.Int64 // trace bytes of pushes being appended

	flushSem chan struct{}
	// searchSem holds a token per running search; searchAdmitted counts
	// searches running or waiting (acquireSearch).
	searchSem      chan struct{}
	searchAdmitted atomic.Int64
	flushWG        sync.WaitGroup
	flushNow       chan chan struct{} // /flush requests; closed reply when done
	ready          chan struct{}
}

// New builds an ingester. It starts nothing: the WAL is opened and replayed
// when the service starts.
func New(cfg Config, walCfg WALConfig, blockCfg block.Config, store backend.Backend, ov *overrides.Overrides, logger log.Logger, reg prometheus.Registerer) (*Ingester, error) {
	ing := &Ingester{
		cfg: cfg, walCfg: walCfg, blockCfg: blockCfg, store: store, overrides: ov,
		logger: log.With(logger, "component", "ingester"), reg: reg,
		metrics:   newMetrics(reg),
		now:       time.Now,
		instances: map[string]*instance{},
		cache:     block.NewCache(cfg.BlockCacheBytes),
		flushSem:  make(chan struct{}, cfg.ConcurrentFlushes),
		searchSem: make(chan struct{}, max(cfg.MaxConcurrentSearches, 1)),
		flushNow:  make(chan chan struct{}),
		ready:     make(chan struct{}),
	}
	lc, err := ring.NewLifecycler(cfg.LifecyclerConfig, leaveFlusher{ing}, client.RingName, client.RingKey, cfg.FlushAllOnShutdown, ing.logger, prometheus.WrapRegistererWithPrefix("rubato_", reg))
	if err != nil {
		return nil, fmt.Errorf("ingester lifecycler: %w", err)
	}
	ing.lifecycler = lc
	ing.Service = services.NewBasicService(ing.starting, ing.running, ing.stopping)
	return ing, nil
}

func (ing *Ingester) starting(ctx context.Context) error {
	root := ing.walCfg.Dir
	blocksDir := filepath.Join(root, "blocks")
	// Local complete blocks are rebuilt from the WAL, which holds everything
	// not yet in the backend; stale ones are dropped rather than re-flushed
	// so a crash never doubles them.
	if err := os.RemoveAll(blocksDir); err != nil {
		return fmt.Errorf("clear local blocks: %w", err)
	}
	ing.tmpDir = filepath.Join(root, "tmp")
	if err := os.RemoveAll(ing.tmpDir); err != nil {
		return err
	}
	if err := os.MkdirAll(ing.tmpDir, 0o755); err != nil {
		return err
	}
	local, err := newLocalStore(blocksDir, ing.logger)
	if err != nil {
		return err
	}
	ing.local = local
	w, err := openWAL(ing.walCfg, ing.logger, ing.reg)
	if err != nil {
		return err
	}
	ing.wal = w
	if ing.marks, err = openFlushMarks(filepath.Join(root, "flushed"), ing.logger); err != nil {
		return err
	}
	if err := ing.replay(); err != nil {
		return err
	}
	close(ing.ready)
	if err := services.StartAndAwaitRunning(ctx, ing.lifecycler); err != nil {
		return fmt.Errorf("start lifecycler: %w", err)
	}
	return nil
}

func (ing *Ingester) replay() error {
	start := time.Now()
	var frags []fragment
	records, spans := 0, 0
	now := ing.now().UnixNano()
	flushed := ing.marks.load(context.Background(), ing.store, ing.cfg.FlushOpTimeout)
	err := ing.wal.replay(func(pos walPos, rec []byte) error {
		pr, err := parseRecord(rec, frags[:0])
		if err != nil {
			// The record's checksum matched, so this is a bug or a record
			// from a newer version: skip it loudly rather than refuse to start.
			ing.metrics.badRecords.Inc()
			level.Warn(ing.logger).Log("msg", "skipping unreadable wal record", "segment", pos.seg, "offset", pos.off, "err", err)
			return nil
		}
		inst := ing.getOrCreateInstance(pr.tenant)
		switch pr.kind {
		case recordRelease:
			inst.mu.Lock()
			inst.releaseHeldLocked(pr.keys, now, ing.cfg.CompleteBlockTimeout)
			inst.mu.Unlock()
			return nil
		case recordPromote:
			inst.mu.Lock()
			inst.promoteHeldLocked(pr.keys, now)
			inst.mu.Unlock()
			return nil
		}
		fr := pr.frags
		frags = fr
		if fr = flushed.filter(pos, fr); len(fr) == 0 {
			return nil // every fragment is in a block already in the backend
		}
		inst.addFragments(pos, fr, now)
		records++
		for _, f := range fr {
			spans += int(f.spans)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replay wal: %w", err)
	}
	ing.metrics.replayedRecs.Add(float64(records))
	level.Info(ing.logger).Log("msg", "wal replayed", "records", records, "spans", spans, "duration", time.Since(start))
	return nil
}

func (ing *Ingester) running(ctx context.Context) error {
	t := time.NewTicker(ing.cfg.FlushCheckPeriod)
	defer t.Stop()
	forget := time.NewTicker(ing.cfg.LifecyclerConfig.HeartbeatPeriod)
	defer forget.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-forget.C:
			ing.forgetDead(ctx)
		case <-t.C:
			ing.tick(ctx, false)
		case done := <-ing.flushNow:
			ing.tick(ctx, true)
			ing.flushWG.Wait()
			ing.tick(ctx, false) // truncate the WAL after the uploads
			close(done)
		}
	}
}

// tick sweeps idle traces, cuts and flushes blocks, and truncates the WAL.
// With immediate, every live trace is cut into a block now.
func (ing *Ingester) tick(ctx context.Context, immediate bool) {
	ing.promoteExpiredHeld()
	cut := false
	for _, inst := range ing.instanceList() {
		if err := inst.retryCutting(ctx); err != nil {
			level.Error(ing.logger).Log("msg", "retry block cut", "tenant", inst.tenant, "err", err)
		}
		if inst.sweep(ing.now(), immediate) {
			if err := inst.cutHead(ctx); err != nil {
				level.Error(ing.logger).Log("msg", "cut block", "err", err)
			}
			cut = true
		}
	}
	if cut {
		if err := ing.wal.rotate(); err != nil {
			level.Error(ing.logger).Log("msg", "rotate wal", "err", err)
		}
	}
	ing.scheduleFlushes(ctx)
	ing.dropOldBlocks(ctx)
	ing.truncateWAL()
}

func (ing *Ingester) truncateWAL() {
	ing.truncMu.Lock()
	defer ing.truncMu.Unlock()
	low := ing.wal.active()
	insts := ing.instanceList()
	mins := make([]uint64, len(insts))
	for k, inst := range insts {
		mins[k] = inst.minSeg()
		low = min(low, mins[k])
	}
	// The search caches of a tenant's WAL parts go with the segments its
	// traces no longer use, searched or not (a tenant nobody searches
	// keeps none past its flush).
	for k, inst := range insts {
		inst.summaries.prune(mins[k])
		inst.tagValues.prune(mins[k])
	}
	if err := ing.wal.truncate(low); err != nil {
		level.Error(ing.logger).Log("msg", "truncate wal", "err", err)
		return
	}
	for _, inst := range insts {
		inst.dropHeldBelow(low)
	}
	ing.marks.prune(low)
}

func (ing *Ingester) stopping(_ error) error {
	err := services.StopAndAwaitTerminated(context.Background(), ing.lifecycler)
	ing.flushWG.Wait()
	if ing.wal != nil {
		err = errors.Join(err, ing.wal.close())
	}
	if ing.local != nil {
		err = errors.Join(err, ing.local.Close())
	}
	return err
}

func (ing *Ingester) getOrCreateInstance(tenantID string) *instance {
	ing.instancesMu.RLock()
	inst := ing.instances[tenantID]
	ing.instancesMu.RUnlock()
	if inst != nil {
		return inst
	}
	ing.instancesMu.Lock()
	defer ing.instancesMu.Unlock()
	if inst = ing.instances[tenantID]; inst == nil {
		inst = newInstance(tenantID, ing)
		ing.instances[tenantID] = inst
	}
	return inst
}

func (ing *Ingester) instanceList() []*instance {
	ing.instancesMu.RLock()
	defer ing.instancesMu.RUnlock()
	out := make([]*instance, 0, len(ing.instances))
	for _, inst := range ing.instances {
		out = append(out, inst)
	}
	return out
}

// readParts reads trace fragments from the WAL and decodes them as one
// trace, each span once: parts may repeat spans (a write retried after its
// first attempt reached this ingester but not a quorum), and what reads
// them (search, the cut to a block) must count each span once.
func (ing *Ingester) readParts(parts []part, buf *[]byte) (*tracev1.TracesData, error) {
	b, err := ing.readRaw(parts, buf)
	if err != nil {
		return nil, err
	}
	return decodeParts(b, len(parts))
}

// readRaw reads parts into *buf (grown as needed), one after the other:
// the bytes of one TracesData holding them all.
func (ing *Ingester) readRaw(parts []part, buf *[]byte) ([]byte, error) {
	total := 0
	for _, p := range parts {
		total += int(p.n)
	}
	b := (*buf)[:0]
	if cap(b) < total {
		b = make([]byte, 0, total)
	}
	for _, p := range parts {
		n := len(b)
		b = b[:n+int(p.n)]
		if err := ing.wal.readAt(p.seg, p.off, b[n:]); err != nil {
			return nil, fmt.Errorf("read wal segment %d at %d: %w", p.seg, p.off, err)
		}
	}
	*buf = b
	return b, nil
}

// decodeParts decodes the bytes of n parts read together, each span once.
func decodeParts(b []byte, n int) (*tracev1.TracesData, error) {
	td, err := decodeInto(b)
	if err != nil || n < 2 {
		return td, err
	}
	return dropDuplicateSpans(td), nil
}

// spanSets holds the sets dropDuplicateSpans checks a trace's spans with.
var spanSets = sync.Pool{New: func() any { return new(combine.SpanSet) }}

// dropDuplicateSpans returns td, or when it holds a span more than once
// (identity: pkg/model/combine's SpanSet), td combined with each span once.
func dropDuplicateSpans(td *tracev1.TracesData) *tracev1.TracesData {
	seen := spanSets.Get().(*combine.SpanSet)
	defer func() {
		if seen.Len() <= 1<<12 { // a huge trace's set is not kept
			seen.Reset()
			spanSets.Put(seen)
		}
	}()
	for _, rs := range td.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				if !seen.Add(sp.SpanId, int32(sp.Kind)) {
					return combine.Traces(td)
				}
			}
		}
	}
	return td
}

func (ing *Ingester) checkReady() error {
	select {
	case <-ing.ready:
		return nil
	default:
		return status.Error(codes.Unavailable, "ingester starting: replaying wal")
	}
}

// PushBytes appends the traces to the WAL and acknowledges them once they are
// durable there (per the WAL's sync policy).
func (ing *Ingester) PushBytes(ctx context.Context, req *rubatopb.PushBytesRequest) (*rubatopb.PushResponse, error) {
	if err := ing.checkReady(); err != nil {
		return nil, err
	}
	if s := ing.State(); s != services.Running {
		return nil, status.Errorf(codes.Unavailable, "ingester is %s", s)
	}
	tenantID, err := tenant.Resolver{MultitenancyEnabled: true}.FromGRPC(ctx)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	n := len(req.Ids)
	if len(req.Traces) != n || len(req.Spans) != n {
		return nil, status.Errorf(codes.InvalidArgument, "push: %d ids, %d traces, %d span counts", n, len(req.Traces), len(req.Spans))
	}
	if len(req.Hold) != 0 && (len(req.Hold) != n || req.PushID == 0) {
		return nil, status.Errorf(codes.InvalidArgument, "push: %d hold flags for %d traces, pushID %d", len(req.Hold), n, req.PushID)
	}
	for _, id := range req.Ids {
		if len(id) != 16 {
			return nil, status.Errorf(codes.InvalidArgument, "push: trace id of %d bytes, want 16", len(id))
		}
	}
	if limit := ing.cfg.MaxInflightPushBytes; limit > 0 {
		var size int64
		for _, tr := range req.Traces {
			size += int64(len(tr))
		}
		defer ing.inflight.Add(-size)
		if in := ing.inflight.Add(size); in > limit {
			ing.metrics.rejectedTraces.WithLabelValues("INFLIGHT_BYTES").Add(float64(n))
			return nil, status.Errorf(codes.ResourceExhausted, "ingester busy: %d bytes of pushes in flight with this one, over max_inflight_push_bytes (%d)", in, limit)
		}
	}
	inst := ing.getOrCreateInstance(tenantID)
	reasons := make([]rubatopb.PushErrorReason, n)
	// Admission and append are atomic per tenant: reserve takes what the
	// accepted traces use under the instance lock; the append runs outside
	// it (group commit) and commit or release settles the reservation.
	res := inst.reserve(req.Ids, req.Traces, req.Hold, reasons, ing.now().UnixNano())
	accepted := res.accepted
	if len(accepted) > 0 {
		size := 32 + len(tenantID)
		for _, k := range accepted {
			size += 30 + len(req.Traces[k])
		}
		pr := pushRecord{tenant: tenantID, push: req.PushID, hold: req.Hold}
		rec, frags := appendRecord(make([]byte, 0, size), pr, req.Ids, req.Traces, req.Spans, accepted)
		pos, err := ing.wal.append(rec)
		if err != nil {
			inst.release(res)
			level.Error(ing.logger).Log("msg", "wal append", "err", err)
			return nil, status.Errorf(codes.Unavailable, "ingester wal: %v", err)
		}
		inst.commit(res, pos, frags, ing.now().UnixNano())
		inst.summaries.summarizePush(ing.now(), pos, frags, req.Traces, accepted)
		ing.metrics.pushedTraces.Add(float64(len(accepted)))
		ing.metrics.pushedBytes.Add(float64(len(rec)))
	}
	if len(accepted) == n {
		return &rubatopb.PushResponse{}, nil
	}
	for _, r := range reasons {
		if r != rubatopb.PushErrorReason_NO_ERROR {
			ing.metrics.rejectedTraces.WithLabelValues(r.String()).Inc()
		}
	}
	return &rubatopb.PushResponse{ErrorsByTrace: reasons}, nil
}

// FindTraceByID returns every part of the trace held by this ingester.
func (ing *Ingester) FindTraceByID(ctx context.Context, req *rubatopb.FindTraceByIDRequest) (*rubatopb.FindTraceByIDResponse, error) {
	if err := ing.checkReady(); err != nil {
		return nil, err
	}
	tenantID, err := tenant.Resolver{MultitenancyEnabled: true}.FromGRPC(ctx)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if len(req.TraceID) != 16 {
		return nil, status.Errorf(codes.InvalidArgument, "trace id of %d bytes, want 16", len(req.TraceID))
	}
	ing.instancesMu.RLock()
	inst := ing.instances[tenantID]
	ing.instancesMu.RUnlock()
	resp := &rubatopb.FindTraceByIDResponse{Trace: &rubatopb.Trace{}}
	if inst == nil {
		return resp, nil
	}
	var id [16]byte
	copy(id[:], req.TraceID)
	td, err := inst.findTraceByID(ctx, id)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "find trace: %v", err)
	}
	if td != nil {
		resp.Trace.ResourceSpans = td.ResourceSpans
	}
	return resp, nil
}

// FlushAndWait cuts every live trace into a block and uploads all blocks,
// waiting until done or ctx ends. The ingester must be running.
func (ing *Ingester) FlushAndWait(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case ing.flushNow <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CheckReady reports whether the ingester accepts pushes.
func (ing *Ingester) CheckReady(ctx context.Context) error {
	if err := ing.checkReady(); err != nil {
		return err
	}
	return ing.lifecycler.CheckReady(ctx)
}

// FlushHandler serves /flush: cut and upload everything now.
func (ing *Ingester) FlushHandler(w http.ResponseWriter, r *http.Request) {
	if err := ing.FlushAndWait(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ShutdownHandler serves /shutdown: flush everything, then leave the ring
// and stop the ingester (the process keeps serving other components).
func (ing *Ingester) ShutdownHandler(w http.ResponseWriter, r *http.Request) {
	if err := ing.FlushAndWait(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	ing.StopAsync()
	w.WriteHeader(http.StatusNoContent)
}
