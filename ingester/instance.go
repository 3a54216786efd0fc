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
	// inflight counts fragments reserved by pushes whose WAL append has not
	// finished (limits.go); only live traces have any.
	inflight int
	// pushes are the pushIDs of its replicated fragments (held.go): what
	// the other replicas are told to release once its block is flushed.
	pushes []uint64
}

// addPush records pushID p (0: unreplicated, not recorded).
func (t *liveTrace) addPush(p uint64) {
	if p != 0 && !slices.Contains(t.pushes, p) {
		t.pushes = append(t.pushes, p)
	}
}

// minSeg is the lowest WAL segment holding a part of the trace (none: the
// highest segment number; a reserved trace's segment is pinned instead).
// Parts are not in segment order: a promoted held part (held.go) may be
// older than the parts before it.
func (t *liveTrace) minSeg() uint64 { return minPartSeg(t.parts) }

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
	released  []heldKey // replicated fragments it holds: released on other replicas once flushed
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
	// sizes tracks each trace's bytes while it is live, in a head block or
	// being cut, reserved bytes of pushes in flight included, for
	// max_bytes_per_trace; recent keeps them for a while after the cut, in
	// expiry order in recentQ (limits.go).
	sizes   map[[16]byte]int
	recent  map[[16]byte]recentSize
	recentQ []recentEntry
	// liveMem is the sum of liveCost(parts+inflight) over live, for
	// max_live_traces_bytes.
	liveMem int

	// pins counts, per WAL segment, pushes in flight and reads that need
	// that segment and every later one kept (pinRead). Guarded by pinMu,
	// which is taken with mu held (for reading or writing).
	pinMu sync.Mutex
	pins  map[uint64]int

	// summaries caches search summaries of WAL parts (searchsummary.go).
	summaries *summaryCache
	tagValues *tagValueCache

	// segParts counts, per WAL segment, the parts of live, head and
	// cutting traces in it, so minSeg need not walk every trace.
	segParts map[uint64]int

	// held indexes held fragments by trace (held.go), released ones
	// still readable included; heldSegs has them per WAL segment;
	// heldCount counts those not released. Guarded by mu.
	held      map[[16]byte][]heldFrag
	heldSegs  map[uint64]*heldSeg
	heldCount int
}

func newInstance(tenantID string, ing *Ingester) *instance {
	return &instance{
		tenant: tenantID,
		ing:    ing,
		logger: log.With(ing.logger, "tenant", tenantID),
		live:   map[[16]byte]*liveTrace{},
		head:   newHeadBlock(ing.now()),
		sizes:  map[[16]byte]int{},
		recent: map[[16]byte]recentSize{},
		pins:   map[uint64]int{},

		segParts: map[uint64]int{},
		held:     map[[16]byte][]heldFrag{},
		heldSegs: map[uint64]*heldSeg{},

		summaries: newSummaryCache(ing.cfg.SearchSummaryBytes, ing.metrics),
		tagValues: newTagValueCache(),
	}
}

func (i *instance) limits() *overrides.Limits { return i.ing.overrides.For(i.tenant) }

// addFragments indexes fragments appended at recPos with no reservation:
// WAL replay, which admits everything the WAL holds.
// Held fragments (f.hold) are indexed as held (held.go).
func (i *instance) addFragments(recPos walPos, frags []fragment, now int64) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, f := range frags {
		if f.hold {
			i.addHeldLocked(recPos, f, now)
			continue
		}
		i.addPartLocked(f.id, recPos.part(f), f.push, f.spans, now)
	}
}

// addPartLocked adds a WAL part to trace id's live trace, creating it, and
// accounts for it in liveMem and sizes.
func (i *instance) addPartLocked(id [16]byte, p part, push uint64, spans uint32, now int64) {
	t := i.live[id]
	if t == nil {
		t = &liveTrace{firstPush: now}
		i.live[id] = t
	}
	i.liveMem += liveCost(len(t.parts)+t.inflight+1) - liveCost(len(t.parts)+t.inflight)
	i.appendPartLocked(t, p, push, spans, now)
	i.sizes[id] = i.traceSizeLocked(id) + int(p.n)
	delete(i.recent, id)
}

// appendPartLocked adds WAL part p of push to live trace t. The caller has
// accounted for it in liveMem and sizes.
func (i *instance) appendPartLocked(t *liveTrace, p part, push uint64, spans uint32, now int64) {
	if len(t.parts) == 0 {
		i.ing.metrics.tracesCreated.WithLabelValues(i.tenant).Inc()
	}
	t.parts = append(t.parts, p)
	i.segParts[p.seg]++
	t.addPush(push)
	t.bytes += int(p.n)
	t.spans += int(spans)
	t.lastAppend = now
}

// sweep moves idle live traces into the head block and reports whether the
// head block should be cut.
func (i *instance) sweep(now time.Time, immediate bool) bool {
	cfg := i.ing.cfg
	idleBefore := now.Add(-cfg.TraceIdlePeriod).UnixNano()
	tooOld := now.Add(-cfg.MaxBlockDuration).UnixNano()
	i.mu.Lock()
	defer i.mu.Unlock()
	i.expireRecentLocked(now)
	for id, t := range i.live {
		if t.inflight > 0 {
			// A push is appending to it: commit must find it live.
			continue
		}
		if !immediate && t.lastAppend > idleBefore && t.firstPush > tooOld {
			continue
		}
		delete(i.live, id)
		i.liveMem -= liveCost(len(t.parts))
		if h := i.head.traces[id]; h != nil {
			h.parts = append(h.parts, t.parts...)
			for _, p := range t.pushes {
				h.addPush(p)
			}
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
	i.settleCutLocked(h)
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
		i.settleCutLocked(h)
		i.mu.Unlock()
	}
	return errors.Join(errs...)
}

// settleCutLocked moves the byte counts of h's traces, now in a complete
// block, to recent unless another part of them is still live, in the head
// or being cut.
// Its parts stop counting in segParts: the complete block's minSeg keeps
// their segments until it is flushed.
func (i *instance) settleCutLocked(h *headBlock) {
	now := i.ing.now().UnixNano()
	for id, t := range h.traces {
		i.settleSizeLocked(id, now)
		for _, p := range t.parts {
			if i.segParts[p.seg]--; i.segParts[p.seg] <= 0 {
				delete(i.segParts, p.seg)
			}
		}
	}
}

func (i *instance) writeBlock(ctx context.Context, h *headBlock) (*completeBlock, error) {
	ids := make([][16]byte, 0, len(h.traces))
	minSeg := ^uint64(0)
	var released []heldKey
	for id, t := range h.traces {
		ids = append(ids, id)
		minSeg = min(minSeg, t.minSeg())
		for _, p := range t.pushes {
			released = append(released, heldKey{id: id, push: p})
		}
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
	return &completeBlock{meta: meta, reader: block.Open(ing.local, meta, ing.cache), minSeg: minSeg, released: released}, nil
}

// findTraceByID collects every part of the trace this instance holds. What
// it reads is copied and pinned under the lock (pinRead) and read without
// it, so a slow read holds up neither pushes nor WAL truncation.
func (i *instance) findTraceByID(ctx context.Context, id [16]byte) (*tracev1.TracesData, error) {
	var parts []part
	var readers []*block.Reader
	release := i.pinRead(func() uint64 {
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
		parts = i.heldPartsLocked(id, parts)
		for _, cb := range i.complete {
			if blockMayHold(cb.meta, id[:]) {
				readers = append(readers, cb.reader)
			}
		}
		return minPartSeg(parts)
	})
	defer release()

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
	for seg := range i.segParts {
		m = min(m, seg)
	}
	for _, cb := range i.complete {
		if cb.flushedAt.IsZero() {
			m = min(m, cb.minSeg)
		}
	}
	m = min(m, i.minHeldSegLocked(i.ing.now().UnixNano()))
	i.pinMu.Lock()
	for seg := range i.pins {
		m = min(m, seg)
	}
	i.pinMu.Unlock()
	return m
}

// pinRead is how a read (a lookup, a search) gets at this instance's data
// without holding its lock while it reads. collect runs under the read lock:
// it copies what the read needs (WAL parts of live, head and cutting traces,
// readers of complete blocks) and returns the lowest WAL segment among the
// parts it copied (^uint64(0) for none; minPartSeg computes it). That
// segment and every later one then stay on disk until release is called,
// whatever truncation runs meanwhile, so the read can go on with no lock
// held. Complete blocks need no pin: a local block is deleted only
// complete_block_timeout after its upload, and a read that finds it gone
// (backend.ErrNotFound) skips it, as the querier has it from the backend.
// Call release exactly once.
func (i *instance) pinRead(collect func() (minSeg uint64)) (release func()) {
	i.mu.RLock()
	seg := collect()
	pinned := seg != ^uint64(0)
	if pinned {
		i.pinSegment(seg)
	}
	i.mu.RUnlock()
	if !pinned {
		return func() {}
	}
	var once sync.Once
	return func() { once.Do(func() { i.unpinSegment(seg) }) }
}

// pinSegment keeps WAL segment seg and every later one out of truncation
// until unpinSegment(seg). The caller holds mu (for reading or writing), so
// minSeg sees either the data seg was taken from or the pin.
func (i *instance) pinSegment(seg uint64) {
	i.pinMu.Lock()
	i.pins[seg]++
	i.pinMu.Unlock()
}

func (i *instance) unpinSegment(seg uint64) {
	i.pinMu.Lock()
	if i.pins[seg]--; i.pins[seg] <= 0 {
		delete(i.pins, seg)
	}
	i.pinMu.Unlock()
}

// minPartSeg is the lowest segment among parts (^uint64(0) for none).
func minPartSeg(parts []part) uint64 {
	m := ^uint64(0)
	for _, p := range parts {
		m = min(m, p.seg)
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
