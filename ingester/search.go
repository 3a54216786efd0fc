package ingester

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/search"
	"github.com/rubatodb/rubato/pkg/tenant"
	"github.com/rubatodb/rubato/pkg/traceql"
)

// Search over an ingester reads a snapshot taken under the instance lock:
// the WAL positions of every live, head, cutting and held trace, and the
// readers of the complete blocks. Stage moves happen under the same lock,
// so the snapshot sees every acknowledged span at least once. The
// snapshot pins the WAL segments it refers to (instance.pinRead, as a
// lookup does) so truncation cannot delete them while the search reads,
// without any lock held during the reads: pushes never wait for a search.
//
// Pushes do wait while the snapshot is taken, so the lock is held only to
// copy each trace's ID and the header of its parts slice: a trace's parts
// are only ever appended to (never changed or removed in place), so the
// prefix a header names stays as it was. Joining a trace's parts across
// stages happens after the lock is released (joinStages).

type walTrace struct {
	id    [16]byte
	parts []part
}

type searchSnapshot struct {
	traces []walTrace
	blocks []*completeBlock
	minSeg uint64 // lowest WAL segment of traces, pinned (^uint64(0): none)
	inst   *instance
}

// snapshot copies what a search reads and pins the WAL segments it refers
// to (pinRead); release must be called when the reads are done. A live
// trace whose first push is still between its WAL append and its indexing
// has no parts yet and is left out, as a lookup leaves it out.
func (i *instance) snapshot() (snap searchSnapshot, release func()) {
	snap.inst = i
	var stages [][]walTrace
	release = i.pinRead(func() uint64 {
		stages = i.collectStagesLocked()
		snap.blocks = append(snap.blocks, i.complete...)
		snap.minSeg = i.minWALSegLocked()
		return snap.minSeg
	})
	snap.traces = joinStages(stages)
	return snap, release
}

// collectStagesLocked copies, with mu held, the ID and parts of every
// trace per stage: live, head, each block being cut, then the held
// fragments. Parts slices are shared, capped at their length (see above);
// held fragments are copied, as their slices are edited in place.
func (i *instance) collectStagesLocked() [][]walTrace {
	maps := make([]map[[16]byte]*liveTrace, 0, 2+len(i.cutting))
	maps = append(maps, i.live, i.head.traces)
	for _, h := range i.cutting {
		maps = append(maps, h.traces)
	}
	stages := make([][]walTrace, 0, len(maps)+1)
	for _, m := range maps {
		st := make([]walTrace, 0, len(m))
		for id, t := range m {
			if len(t.parts) > 0 {
				st = append(st, walTrace{id: id, parts: t.parts[:len(t.parts):len(t.parts)]})
			}
		}
		stages = append(stages, st)
	}
	// Held fragments too: when their builder is down, the querier counts
	// on the replicas to answer for it (held.go).
	// All in one array, cut into the traces' slices once it is filled.
	held := make([]walTrace, 0, len(i.held))
	all := make([]part, 0, 2*len(i.held))
	ends := make([]int, 0, len(i.held))
	for id, hs := range i.held {
		if len(hs) == 0 {
			continue
		}
		for _, h := range hs {
			all = append(all, h.part)
		}
		held = append(held, walTrace{id: id})
		ends = append(ends, len(all))
	}
	start := 0
	for k, end := range ends {
		held[k].parts = all[start:end:end]
		start = end
	}
	return append(stages, held)
}

// minWALSegLocked is the lowest WAL segment of any part of a live, head,
// cutting or held trace (^uint64(0): none), what a snapshot must pin,
// from the per-segment counts rather than every part.
func (i *instance) minWALSegLocked() uint64 {
	m := ^uint64(0)
	for seg := range i.segParts {
		m = min(m, seg)
	}
	for seg := range i.heldSegs {
		m = min(m, seg)
	}
	return m
}

// joinStages makes one walTrace per ID of stages (live first, as
// collectStagesLocked orders them), its parts in stage order. A trace is
// in one stage but for a few (a part pushed after its block was cut, held
// fragments of a trace built here), so only the stages after the first
// are indexed by ID, and a trace in one stage keeps its shared parts
// slice. Each walTrace is copied once: the first stage's to the front of
// the result, the later stages' behind them, joined among themselves,
// then those joined into a first-stage trace are removed.
func joinStages(stages [][]walTrace) []walTrace {
	if len(stages) == 0 {
		return nil
	}
	first, rest := stages[0], stages[1:]
	n := 0
	for _, st := range rest {
		n += len(st)
	}
	if n == 0 {
		return first
	}
	out := append(make([]walTrace, 0, len(first)+n), first...)
	at := make(map[[16]byte]int, n) // index in out
	for _, st := range rest {
		for _, t := range st {
			if k, ok := at[t.id]; ok {
				out[k].parts = concatParts(out[k].parts, t.parts)
				continue
			}
			at[t.id] = len(out)
			out = append(out, t)
		}
	}
	joined := false
	for k := range first {
		if j, ok := at[out[k].id]; ok {
			out[k].parts = concatParts(out[k].parts, out[j].parts)
			out[j].parts = nil // joined: removed below
			joined = true
		}
	}
	if !joined {
		return out
	}
	tail := out[len(first):]
	kept := slices.DeleteFunc(tail, func(t walTrace) bool { return t.parts == nil })
	return out[:len(first)+len(kept)]
}

// concatParts is a followed by b in a new array: a and b may share
// arrays with the instance's traces, which are never written through.
func concatParts(a, b []part) []part {
	out := make([]part, 0, len(a)+len(b))
	return append(append(out, a...), b...)
}

// eachWALTrace calls fn for every trace of the snapshot's WAL part that
// overlaps [start, end] (Unix seconds, 0 = open; checked on the traces'
// search summaries before reading them), decoded. fn returns false to stop.
func (ing *Ingester) eachWALTrace(ctx context.Context, snap searchSnapshot, start, end uint32, st *search.Stats,
	fn func(id [16]byte, td *tracev1.TracesData) bool,
) error {
	var buf []byte
	var b summaryBuilder
	var sums []*partSummary
	for k, t := range snap.traces {
		if k%64 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if start != 0 || end != 0 {
			// Skip traces out of range without decoding them.
			var err error
			if sums, err = ing.summaries(snap.inst, t.parts, sums, &b, &buf, st); err != nil {
				return err
			}
			if s, e := traceBounds(sums); !search.InRange(s, e, start, end) {
				continue
			}
		}
		td, err := ing.readParts(t.parts, &buf)
		if err != nil {
			return err
		}
		st.InspectedTraces++
		st.InspectedBytes += uint64(len(buf))
		st.InspectedSpans += uint64(search.CountSpans(td))
		if !fn(t.id, td) {
			return nil
		}
	}
	return nil
}

func blockInRange(m *block.Meta, start, end uint32) bool {
	tr := search.TimeRange{}
	if start != 0 {
		tr.Start = time.Unix(int64(start), 0)
	}
	if end != 0 {
		tr.End = time.Unix(int64(end)+1, 0)
	}
	return tr.Overlaps(m.StartTime, m.EndTime)
}

func (ing *Ingester) searchInstance(ctx context.Context, tenantID string) (*instance, error) {
	if err := ing.checkReady(); err != nil {
		return nil, err
	}
	if tenantID == "" {
		return nil, status.Error(codes.InvalidArgument, "no tenant")
	}
	ing.instancesMu.RLock()
	inst := ing.instances[tenantID]
	ing.instancesMu.RUnlock()
	return inst, nil
}

func grpcErr(what string, err error) error {
	switch {
	case errors.Is(err, search.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Errorf(codes.Internal, "%s: %v", what, err)
}

// acquireSearch admits a search (or tag call): at most
// max_concurrent_searches run at once, up to 4× as many more wait for a
// slot, and any further call is refused with ResourceExhausted, so that
// searches cannot take the CPU pushes need. release must be called once.
func (ing *Ingester) acquireSearch(ctx context.Context) (release func(), err error) {
	limit := int64(cap(ing.searchSem))
	if ing.searchAdmitted.Add(1) > 5*limit {
		ing.searchAdmitted.Add(-1)
		ing.metrics.searchesRefused.Inc()
		return nil, status.Errorf(codes.ResourceExhausted, "too many searches in this ingester (max_concurrent_searches %d, %d waiting)", limit, 4*limit)
	}
	select {
	case ing.searchSem <- struct{}{}:
		return func() { <-ing.searchSem; ing.searchAdmitted.Add(-1) }, nil
	case <-ctx.Done():
		ing.searchAdmitted.Add(-1)
		return nil, grpcErr("search", ctx.Err())
	}
}

// searchWAL runs req over the snapshot's WAL-held traces. Each trace's
// parts are checked against their search summaries (searchsummary.go:
// time range, then the query's conditions) and only the traces that may
// match are read and evaluated, most recent first, until comb is full.
func (ing *Ingester) searchWAL(ctx context.Context, inst *instance, snap searchSnapshot, req search.Request, comb *search.Combiner, st *search.Stats) error {
	inst.summaries.prune(snap.minSeg)
	inst.summaries.lastSearch.Store(ing.now().UnixNano())
	f := newSummaryFilter(req.Query)
	type cand struct {
		k     int
		start uint64
	}
	var cands []cand
	var b summaryBuilder
	var buf, pbuf []byte
	proj := newPartProjector(search.BlockFields(req.Query))
	var sums []*partSummary
	for k, t := range snap.traces {
		if k%64 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		var err error
		if sums, err = ing.summaries(inst, t.parts, sums, &b, &buf, st); err != nil {
			return err
		}
		st.InspectedTraces++
		s, e := traceBounds(sums)
		if (req.Start != 0 || req.End != 0) && !search.InRange(s, e, req.Start, req.End) {
			continue
		}
		if f.mayMatch(sums) {
			cands = append(cands, cand{k, s})
		}
	}
	// A limited search keeps the most recent traces, as the combiner
	// orders them.
	slices.SortFunc(cands, func(a, b cand) int {
		if a.start != b.start {
			if a.start > b.start {
				return -1
			}
			return 1
		}
		return compareIDs(snap.traces[a.k].id[:], snap.traces[b.k].id[:])
	})
	for n, c := range cands {
		if n%64 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		t := snap.traces[c.k]
		raw, err := ing.readRaw(t.parts, &buf)
		if err != nil {
			return err
		}
		st.InspectedBytes += uint64(len(raw))
		if proj != nil {
			// Only what the query reads is decoded (searchproject.go).
			if pbuf, err = proj.project(pbuf[:0], raw); err != nil {
				return fmt.Errorf("trace %x: %w", t.id, err)
			}
			raw = pbuf
		}
		td, err := decodeParts(raw, len(t.parts))
		if err != nil {
			return err
		}
		st.InspectedSpans += uint64(search.CountSpans(td))
		md, err := search.Match(req.Query, t.id[:], td, req.SpansPerSpanSet)
		if err != nil {
			return err
		}
		if md != nil {
			comb.Add(md)
			if comb.Full() {
				return nil
			}
		}
	}
	return nil
}

// summaries returns the search summaries of parts (in sums, reused),
// from the instance's cache or built by reading the parts missing from it.
func (ing *Ingester) summaries(inst *instance, parts []part, sums []*partSummary, b *summaryBuilder, buf *[]byte, st *search.Stats) ([]*partSummary, error) {
	sums = slices.Grow(sums[:0], len(parts))[:len(parts)]
	inst.summaries.lookup(parts, sums)
	for i, s := range sums {
		if s != nil {
			continue
		}
		p := parts[i]
		if cap(*buf) < int(p.n) {
			*buf = make([]byte, p.n)
		}
		raw := (*buf)[:p.n]
		if err := ing.wal.readAt(p.seg, p.off, raw); err != nil {
			return sums, fmt.Errorf("read wal segment %d at %d: %w", p.seg, p.off, err)
		}
		st.InspectedBytes += uint64(len(raw))
		ing.metrics.summariesBuilt.WithLabelValues("search").Inc()
		s, err := b.scan(raw)
		if err != nil {
			// Not readable without decoding: summarise it decoded (or
			// fail as a lookup would).
			td, derr := decodeInto(raw)
			if derr != nil {
				return sums, derr
			}
			s = b.summarize(td)
		}
		inst.summaries.store(parts[i:i+1], []*partSummary{s})
		sums[i] = s
	}
	return sums, nil
}

// SearchRecent runs a TraceQL search over everything this ingester holds
// for the tenant, but the local copies of the blocks in r.SkipBlocks (the
// caller searches those in the backend).
func (ing *Ingester) SearchRecent(ctx context.Context, r *rubatopb.IngesterSearchRequest) (*rubatopb.SearchResponse, error) {
	tenantID, err := tenant.Resolver{MultitenancyEnabled: true}.FromGRPC(ctx)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	req := r.GetRequest()
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "search without a request")
	}
	skip, err := skipSet(r.GetSkipBlocks())
	if err != nil {
		return nil, err
	}
	q, err := search.ParseQuery(req.Query)
	if err != nil {
		return nil, grpcErr("search", err)
	}
	inst, err := ing.searchInstance(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	resp := &rubatopb.SearchResponse{Metrics: &rubatopb.SearchMetrics{}}
	if inst == nil {
		return resp, nil
	}
	done, err := ing.acquireSearch(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	start := time.Now()
	comb := search.NewCombiner(int(req.Limit), int(req.SpansPerSpanSet))
	st, err := ing.searchSnapshotData(ctx, inst, search.Request{Query: q, Start: req.Start, End: req.End, SpansPerSpanSet: int(req.SpansPerSpanSet)}, skip, comb)
	ing.metrics.searchDuration.WithLabelValues("search").Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, grpcErr("search", err)
	}
	resp.Traces = comb.Result()
	resp.Metrics = st.Metrics()
	return resp, nil
}

// skipSet decodes IngesterSearchRequest.skipBlocks.
func skipSet(ids [][]byte) (map[uuid.UUID]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	list, err := search.ParseBlockIDs(ids)
	if err != nil {
		return nil, grpcErr("search", err)
	}
	skip := make(map[uuid.UUID]bool, len(list))
	for _, id := range list {
		skip[id] = true
	}
	return skip, nil
}

func (ing *Ingester) searchSnapshotData(ctx context.Context, inst *instance, req search.Request, skip map[uuid.UUID]bool, comb *search.Combiner) (search.Stats, error) {
	snap, release := inst.snapshot()
	defer release()
	var st search.Stats
	if err := ing.searchWAL(ctx, inst, snap, req, comb, &st); err != nil || comb.Full() {
		return st, err
	}
	for _, cb := range snap.blocks {
		if !blockInRange(cb.meta, req.Start, req.End) {
			continue
		}
		if skip[cb.meta.BlockID] {
			ing.metrics.searchBlocksSkipped.Inc()
			continue // searched in the backend by the caller
		}
		bst, err := search.SearchBlock(ctx, cb.reader, req, func(md *rubatopb.TraceSearchMetadata) bool {
			comb.Add(md)
			return !comb.Full()
		})
		st.Add(bst)
		if errors.Is(err, backend.ErrNotFound) {
			continue // dropped after complete_block_timeout: it is in the backend
		}
		if err != nil {
			return st, fmt.Errorf("block %s: %w", cb.meta.BlockID, err)
		}
		if comb.Full() {
			break
		}
	}
	return st, nil
}

// eachTrace calls fn for every trace the ingester holds for inst that
// overlaps [start, end]: WAL-held traces then complete blocks.
// If walFn is not nil, it is given the snapshot to read the WAL-held
// traces itself instead; if blockFn is not nil, it is given each
// complete block overlapping [start, end] instead of its traces.
func (ing *Ingester) eachTrace(ctx context.Context, inst *instance, start, end uint32, fn func(td *tracev1.TracesData) error,
	walFn func(snap searchSnapshot, st *search.Stats) error, blockFn func(ctx context.Context, r *block.Reader) error,
) error {
	snap, release := inst.snapshot()
	defer release()
	var st search.Stats
	var fnErr error
	var err error
	if walFn != nil {
		err = walFn(snap, &st)
	} else {
		err = ing.eachWALTrace(ctx, snap, start, end, &st, func(_ [16]byte, td *tracev1.TracesData) bool {
			fnErr = fn(td)
			return fnErr == nil
		})
	}
	if err == nil {
		err = fnErr
	}
	if err != nil {
		return err
	}
	for _, cb := range snap.blocks {
		if !blockInRange(cb.meta, start, end) {
			continue
		}
		var err error
		if blockFn != nil {
			err = blockFn(ctx, cb.reader)
		} else {
			err = search.EachTrace(ctx, cb.reader, nil, start, end, fn)
		}
		if errors.Is(err, backend.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("block %s: %w", cb.meta.BlockID, err)
		}
	}
	return nil
}

// SearchTags returns the attribute names this ingester holds for the tenant.
func (ing *Ingester) SearchTags(ctx context.Context, req *rubatopb.SearchTagsRequest) (*rubatopb.SearchTagsV2Response, error) {
	tenantID, err := tenant.Resolver{MultitenancyEnabled: true}.FromGRPC(ctx)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if !search.ValidTagScope(req.Scope) {
		return nil, status.Errorf(codes.InvalidArgument, "unknown tag scope %q", req.Scope)
	}
	var q *traceql.Query
	if req.Query != "" {
		if q, err = search.ParseQuery(req.Query); err != nil {
			return nil, grpcErr("search tags", err)
		}
	}
	inst, err := ing.searchInstance(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	names := search.NewTagNames(int(req.MaxTagsPerScope), 0)
	if inst != nil && req.Scope != search.ScopeIntrinsic {
		done, err := ing.acquireSearch(ctx)
		if err != nil {
			return nil, err
		}
		defer done()
		start := time.Now()
		var walFn func(searchSnapshot, *search.Stats) error
		var blockFn func(context.Context, *block.Reader) error
		if q == nil || q.IsMatchAll() {
			// The WAL's names from its bytes, each part read once
			// (tagvalues.go); a block's from its tag index, none decoded.
			walFn = func(snap searchSnapshot, st *search.Stats) error {
				add := func(v *search.TagValues) {
					v.Each(func(scope, name string) { names.Add(scope, name) })
				}
				return ing.walTagCached(ctx, inst, snap, cacheKey{names: true}, req.Start, req.End, tagNamesWire, add, st)
			}
			blockFn = func(ctx context.Context, r *block.Reader) error { return search.BlockTagNames(ctx, r, names) }
		}
		err = ing.eachTrace(ctx, inst, req.Start, req.End, func(td *tracev1.TracesData) error { return names.AddTrace(q, td) }, walFn, blockFn)
		ing.metrics.searchDuration.WithLabelValues("tags").Observe(time.Since(start).Seconds())
		if err != nil {
			return nil, grpcErr("search tags", err)
		}
	}
	return names.Response(req.Scope), nil
}

// SearchTagValues returns the typed values of a tag this ingester holds for
// the tenant, in traces matching the request's query.
func (ing *Ingester) SearchTagValues(ctx context.Context, req *rubatopb.SearchTagValuesRequest) (*rubatopb.SearchTagValuesV2Response, error) {
	tenantID, err := tenant.Resolver{MultitenancyEnabled: true}.FromGRPC(ctx)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	tag, err := search.ParseTag(req.TagName)
	if err != nil {
		return nil, grpcErr("search tag values", err)
	}
	q, err := search.ParseQuery(req.Query)
	if err != nil {
		return nil, grpcErr("search tag values", err)
	}
	inst, err := ing.searchInstance(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	vals := search.NewTagValues(int(req.MaxTagValues), 0)
	if inst != nil {
		done, err := ing.acquireSearch(ctx)
		if err != nil {
			return nil, err
		}
		defer done()
		start := time.Now()
		var walFn func(searchSnapshot, *search.Stats) error
		var blockFn func(context.Context, *block.Reader) error
		if q.IsMatchAll() && (tag.Scope == search.ScopeResource || tag.Scope == search.ScopeSpan) {
			// Only the tag's values from the WAL bytes, each part read
			// once per tag (tagvalues.go).
			walFn = func(snap searchSnapshot, st *search.Stats) error {
				extract := func(raw []byte, into *search.TagValues, bd *bounds) error {
					_, err := tagValuesWire(tag, raw, into, bd)
					return err
				}
				add := func(v *search.TagValues) { vals.AddAll(v) }
				return ing.walTagCached(ctx, inst, snap, cacheKey{tag: tag}, req.Start, req.End, extract, add, st)
			}
		}
		if q.IsMatchAll() {
			// A block's values come from its tag index, none decoded.
			blockFn = func(ctx context.Context, r *block.Reader) error { return search.BlockTagValues(ctx, r, tag, vals) }
		}
		err = ing.eachTrace(ctx, inst, req.Start, req.End, func(td *tracev1.TracesData) error { return vals.AddTrace(tag, q, td) }, walFn, blockFn)
		ing.metrics.searchDuration.WithLabelValues("tag_values").Observe(time.Since(start).Seconds())
		if err != nil {
			return nil, grpcErr("search tag values", err)
		}
	}
	return vals.Response(), nil
}
