package ingester

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/google/uuid"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/model/combine"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// part is one fragment of a trace as it sits in the WAL.
type part struct {
	seg uint64
	off int64
	n   uint32
}

// liveTrace is a trace still receiving spans. Only positions are kept in
// memory; the bytes stay in the WAL segment files (and the page cache).
type liveTrace struct {
	parts      []part
	bytes      int
	spans      int
	firstPush  int64 // unix nanos
	lastAppend int64 // unix nanos
}

func (t *liveTrace) minSeg() uint64 { return t.parts[0].seg }

// Estimated memory of the live-trace index, for max_live_traces_bytes: a
// live trace costs liveTraceBytes (its map entries in live and sizes, the
// liveTrace and its first part) plus livePartBytes for every further WAL
// fragment. TestLiveTraceCostEstimate keeps these at or above what
// BenchmarkLiveTraceMemory measures.
const (
	liveTraceBytes = 240
	livePartBytes  = 48
)

// liveCost is the estimated memory of a live trace of parts fragments (0
// for none: no trace).
func liveCost(parts int) int {
	if parts <= 0 {
		return 0
	}
	return liveTraceBytes + (parts-1)*livePartBytes
}

// headBlock collects idle traces until it is cut into a complete block.
type headBlock struct {
	traces  map[[16]byte]*liveTrace
	bytes   int
	created time.Time
}

func newHeadBlock(now time.Time) *headBlock {
	return &headBlock{traces: map[[16]byte]*liveTrace{}, created: now}
}

// completeBlock is a block written to the ingester's local store.
type completeBlock struct {
	meta      *block.Meta
	reader    *block.Reader
	minSeg    uint64    // WAL segments holding its data must stay until flushed
	flushedAt time.Time // zero until in the backend
	flushing  bool
	attempts  int
	nextTry   time.Time
}

// instance holds one tenant's traces in an ingester.
//
// Every span an acknowledged push carried is, at every moment, reachable by
// FindTraceByID from exactly one of: live, head, cutting, complete (and, once
// flushed, the backend). Moves between them happen under mu, so a reader
// holding mu sees each span at least once.
type instance struct {
	tenant string
	ing    *Ingester
	logger log.Logger

	mu       sync.RWMutex
	live     map[[16]byte]*liveTrace
	head     *headBlock
	cutting  []*headBlock
	complete []*completeBlock
	// sizes tracks each trace's bytes while it is live or in a head block,
	// for max_bytes_per_trace.
	sizes map[[16]byte]int
	// liveMem is the sum of liveCost over live, for max_live_traces_bytes.
	liveMem int
}

func newInstance(tenantID string, ing *Ingester) *instance {
	return &instance{
		tenant: tenantID,
		ing:    ing,
		logger: log.With(ing.logger, "tenant", tenantID),
		live:   map[[16]byte]*liveTrace{},
		head:   newHeadBlock(ing.now()),
		sizes:  map[[16]byte]int{},
	}
}

func (i *instance) limits() *overrides.Limits { return i.ing.overrides.For(i.tenant) }

// admit decides which traces of a push are accepted, filling reasons. A new
// trace is refused (MAX_LIVE_TRACES) when the tenant's live traces, with the
// new ones of this push, would exceed max_traces_per_user or
// max_live_traces_bytes; fragments of traces already live are not.
func (i *instance) admit(ids [][]byte, traces [][]byte, reasons []rubatopb.PushErrorReason) (accepted []int) {
	lim := i.limits()
	i.mu.RLock()
	defer i.mu.RUnlock()
	newTraces, newMem := 0, 0
	for k := range ids {
		var id [16]byte
		copy(id[:], ids[k])
		_, isLive := i.live[id]
		if !isLive && !i.roomForNewTrace(lim, newTraces, newMem) {
			reasons[k] = rubatopb.PushErrorReason_MAX_LIVE_TRACES
			continue
		}
		if lim.MaxBytesPerTrace > 0 && i.sizes[id]+len(traces[k]) > lim.MaxBytesPerTrace {
			reasons[k] = rubatopb.PushErrorReason_TRACE_TOO_LARGE
			continue
		}
		if isLive {
			newMem += livePartBytes
		} else {
			newTraces++
			newMem += liveCost(1)
		}
		accepted = append(accepted, k)
	}
	return accepted
}

// roomForNewTrace reports whether one more live trace fits the limits,
// given newTraces and newMem already admitted from the same push.
func (i *instance) roomForNewTrace(lim *overrides.Limits, newTraces, newMem int) bool {
	if lim.MaxTracesPerUser > 0 && len(i.live)+newTraces >= lim.MaxTracesPerUser {
		return false
	}
	return lim.MaxLiveTracesBytes <= 0 || i.liveMem+newMem+liveCost(1) <= lim.MaxLiveTracesBytes
}

// addFragments records WAL positions of fragments appended at recPos.
func (i *instance) addFragments(recPos walPos, frags []fragment, now int64) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, f := range frags {
		t := i.live[f.id]
		if t == nil {
			t = &liveTrace{firstPush: now}
			i.live[f.id] = t
			i.ing.metrics.tracesCreated.WithLabelValues(i.tenant).Inc()
		}
		i.liveMem += liveCost(len(t.parts)+1) - liveCost(len(t.parts))
		t.parts = append(t.parts, part{seg: recPos.seg, off: recPos.off + int64(f.off), n: uint32(f.n)})
		t.bytes += f.n
		t.spans += int(f.spans)
		t.lastAppend = now
		i.sizes[f.id] += f.n
	}
}

// sweep moves idle live traces into the head block and reports whether the
// head block should be cut.
func (i *instance) sweep(now time.Time, immediate bool) bool {
	cfg := i.ing.cfg
	idleBefore := now.Add(-cfg.TraceIdlePeriod).UnixNano()
	tooOld := now.Add(-cfg.MaxBlockDuration).UnixNano()
	i.mu.Lock()
	defer i.mu.Unlock()
	for id, t := range i.live {
		if !immediate && t.lastAppend > idleBefore && t.firstPush > tooOld {
			continue
		}
		delete(i.live, id)
		i.liveMem -= liveCost(len(t.parts))
		if h := i.head.traces[id]; h != nil {
			h.parts = append(h.parts, t.parts...)
			h.bytes += t.bytes
			h.spans += t.spans
		} else {
			i.head.traces[id] = t
		}
		i.head.bytes += t.bytes
	}
	i.ing.metrics.liveTraces.WithLabelValues(i.tenant).Set(float64(len(i.live)))
	i.ing.metrics.liveTracesBytes.WithLabelValues(i.tenant).Set(float64(i.liveMem))
	if len(i.head.traces) == 0 {
		i.head.created = now
		return false
	}
	return immediate || uint64(i.head.bytes) >= cfg.MaxBlockBytes || now.Sub(i.head.created) >= cfg.MaxBlockDuration
}

// cutHead turns the current head block into a complete block in the local
// store. The head stays readable (in cutting) until the complete block
// replaces it.
func (i *instance) cutHead(ctx context.Context) error {
	i.mu.Lock()
	h := i.head
	if len(h.traces) == 0 {
		i.mu.Unlock()
		return nil
	}
	i.head = newHeadBlock(i.ing.now())
	i.cutting = append(i.cutting, h)
	i.mu.Unlock()

	start := time.Now()
	cb, err := i.writeBlock(ctx, h)
	if err != nil {
		// The head stays in cutting, still readable and still pinning its WAL
		// segments; the next cut retries it.
		i.ing.metrics.failedCuts.Inc()
		return fmt.Errorf("cut block for tenant %s: %w", i.tenant, err)
	}
	i.mu.Lock()
	i.cutting = slices.DeleteFunc(i.cutting, func(c *headBlock) bool { return c == h })
	i.complete = append(i.complete, cb)
	for id := range h.traces {
		if _, live := i.live[id]; !live && i.head.traces[id] == nil {
			delete(i.sizes, id)
		}
	}
	i.mu.Unlock()
	i.ing.metrics.blocksCut.Inc()
	i.ing.metrics.cutDuration.Observe(time.Since(start).Seconds())
	level.Info(i.logger).Log("msg", "block cut", "block", cb.meta.BlockID, "traces", cb.meta.TotalObjects, "spans", cb.meta.TotalSpans, "bytes", cb.meta.Size, "duration", time.Since(start))
	return nil
}

// retryCutting retries heads whose earlier cut failed.
func (i *instance) retryCutting(ctx context.Context) error {
	i.mu.RLock()
	pending := slices.Clone(i.cutting)
	i.mu.RUnlock()
	var errs []error
	for _, h := range pending {
		cb, err := i.writeBlock(ctx, h)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		i.mu.Lock()
		i.cutting = slices.DeleteFunc(i.cutting, func(c *headBlock) bool { return c == h })
		i.complete = append(i.complete, cb)
		i.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (i *instance) writeBlock(ctx context.Context, h *headBlock) (*completeBlock, error) {
	ids := make([][16]byte, 0, len(h.traces))
	minSeg := ^uint64(0)
	for id, t := range h.traces {
		ids = append(ids, id)
		minSeg = min(minSeg, t.minSeg())
	}
	slices.SortFunc(ids, func(a, b [16]byte) int { return compareIDs(a[:], b[:]) })

	ing := i.ing
	w, err := block.NewWriter(ctx, ing.local, ing.blockCfg, i.tenant, uuid.New(), 0, len(ids), ing.tmpDir)
	if err != nil {
		return nil, err
	}
	var buf []byte
	for _, id := range ids {
		td, err := ing.readParts(h.traces[id].parts, &buf)
		if err != nil {
			w.Abort()
			return nil, err
		}
		if err := w.Add(id[:], td); err != nil {
			w.Abort()
			return nil, err
		}
	}
	meta, err := w.Close(ctx)
	if err != nil {
		return nil, err
	}
	if err := ing.marks.record(meta, h); err != nil {
		// Without its mark the block is replayed and uploaded again after a
		// crash that follows its upload: a duplicate, never a loss.
		level.Warn(i.logger).Log("msg", "writing flush mark failed", "block", meta.BlockID, "err", err)
	}
	return &completeBlock{meta: meta, reader: block.Open(ing.local, meta, ing.cache), minSeg: minSeg}, nil
}

// findTraceByID collects every part of the trace this instance holds.
func (i *instance) findTraceByID(ctx context.Context, id [16]byte) (*tracev1.TracesData, error) {
	var parts []part
	i.mu.RLock()
	if t := i.live[id]; t != nil {
		parts = append(parts, t.parts...)
	}
	if t := i.head.traces[id]; t != nil {
		parts = append(parts, t.parts...)
	}
	for _, h := range i.cutting {
		if t := h.traces[id]; t != nil {
			parts = append(parts, t.parts...)
		}
	}
	readers := make([]*block.Reader, 0, len(i.complete))
	for _, cb := range i.complete {
		if blockMayHold(cb.meta, id[:]) {
			readers = append(readers, cb.reader)
		}
	}
	i.mu.RUnlock()

	var c combine.Combiner
	if len(parts) > 0 {
		var buf []byte
		td, err := i.ing.readParts(parts, &buf)
		if err != nil {
			return nil, err
		}
		c.Add(td)
	}
	for _, r := range readers {
		td, err := r.FindTraceByID(ctx, id[:])
		if errors.Is(err, backend.ErrNotFound) {
			// Deleted locally after complete_block_timeout: the querier
			// reads it from the backend.
			continue
		}
		if err != nil {
			return nil, err
		}
		c.Add(td)
	}
	return c.Result(), nil
}

// minSeg returns the oldest WAL segment this instance still needs.
func (i *instance) minSeg() uint64 {
	m := ^uint64(0)
	i.mu.RLock()
	defer i.mu.RUnlock()
	for _, t := range i.live {
		m = min(m, t.minSeg())
	}
	for _, t := range i.head.traces {
		m = min(m, t.minSeg())
	}
	for _, h := range i.cutting {
		for _, t := range h.traces {
			m = min(m, t.minSeg())
		}
	}
	for _, cb := range i.complete {
		if cb.flushedAt.IsZero() {
			m = min(m, cb.minSeg)
		}
	}
	return m
}

func blockMayHold(m *block.Meta, id []byte) bool {
	return compareIDs(id, m.MinID) >= 0 && compareIDs(id, m.MaxID) <= 0
}

func compareIDs(a, b []byte) int {
	for k := 0; k < len(a) && k < len(b); k++ {
		if a[k] != b[k] {
			if a[k] < b[k] {
				return -1
			}
			return 1
		}
	}
	return len(a) - len(b)
}

// decodeInto unmarshals concatenated TracesData fragments: protobuf merges
// repeated fields of concatenated messages, so one Unmarshal decodes them all.
func decodeInto(b []byte) (*tracev1.TracesData, error) {
	td := &tracev1.TracesData{}
	if err := proto.Unmarshal(b, td); err != nil {
		return nil, fmt.Errorf("decode trace: %w", err)
	}
	return td, nil
}
