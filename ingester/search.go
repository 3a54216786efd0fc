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
// the WAL positions of every live, head, cutting and held trace (parts of
// one ID joined), and the readers of the complete blocks. Stage moves happen under
// the same lock, so the snapshot sees every acknowledged span at least once.
// The snapshot pins the WAL segments it refers to (instance.pinRead, as a
// lookup does) so truncation cannot delete them while the search reads,
// without any lock held during the reads: pushes never wait for a search.

type walTrace struct {
	id    [16]byte
	parts []part
}

type searchSnapshot struct {
	traces []walTrace
	blocks []*completeBlock
	bytes  uint64
	minSeg uint64 // lowest WAL segment of traces (^uint64(0): none)
	inst   *instance
}

// snapshot copies what a search reads and pins the WAL segments it refers
// to (pinRead); release must be called when the reads are done. A live
// trace whose first push is still between its WAL append and its indexing
// has no parts yet and is left out, as a lookup leaves it out.
func (i *instance) snapshot() (snap searchSnapshot, release func()) {
	snap.inst = i
	release = i.pinRead(func() uint64 {
		// No map of the IDs seen: a trace is in one stage but for a few
		// (a new part after its block was cut, held fragments of a trace
		// built here), so each is joined with its parts in the later
		// stages by lookups in their own maps, and skipped there. Its
		// parts share one array. This runs with the lock held: pushes
		// wait for it (BenchmarkSnapshot).
		n := len(i.live) + len(i.head.traces) + len(i.held)
		for _, h := range i.cutting {
			n += len(h.traces)
		}
		snap.traces = make([]walTrace, 0, n)
		all := make([]part, 0, n+n/2)
		minSeg := ^uint64(0)
		add := func(p part) {
			all = append(all, p)
			snap.bytes += uint64(p.n)
			minSeg = min(minSeg, p.seg)
		}
		// stage k is live (0), head (1), cutting[k-2]; held after them.
		stages := make([]map[[16]byte]*liveTrace, 0, 2+len(i.cutting))
		stages = append(stages, i.live, i.head.traces)
		for _, h := range i.cutting {
			stages = append(stages, h.traces)
		}
		seenBefore := func(id [16]byte, k int) bool {
			for _, m := range stages[:k] {
				if _, ok := m[id]; ok {
					return true
				}
			}
			return false
		}
		for k, m := range stages {
			for id, t := range m {
				if seenBefore(id, k) {
					continue
				}
				start := len(all)
				for _, p := range t.parts {
					add(p)
				}
				for _, later := range stages[k+1:] {
					if lt, ok := later[id]; ok {
						for _, p := range lt.parts {
							add(p)
						}
					}
				}
				// Held fragments too: when their builder is down, the
				// querier counts on the replicas to answer for it
				// (held.go).
				for _, h := range i.held[id] {
					add(h.part)
				}
				snap.traces = append(snap.traces, walTrace{id: id, parts: all[start:len(all):len(all)]})
			}
		}
		for id, hs := range i.held {
			if seenBefore(id, len(stages)) {
				continue
			}
			start := len(all)
			for _, h := range hs {
				add(h.part)
			}
			snap.traces = append(snap.traces, walTrace{id: id, parts: all[start:len(all):len(all)]})
		}
		snap.blocks = append(snap.blocks, i.complete...)
		snap.minSeg = minSeg
		return minSeg
	})
	return snap, release
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
		inst.summaries.store(parts[i], s)
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
