package querier

import (
	"context"
	"errors"
	"math"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/search"
)

// Jobs sent by the query-frontend (querier/frontend) and run here by the
// worker (querier/worker). A job names its backend blocks by their full
// meta.json, so the querier reads exactly what the frontend planned even if
// its own blocklist has not caught up yet.

// Overlaps reports whether the block's time range meets r.
func (r TimeRange) Overlaps(m *block.Meta) bool { return r.overlaps(m) }

// BlockMayHold reports whether id is within the block's trace-ID range.
func BlockMayHold(m *block.Meta, id []byte) bool { return blockMayHold(m, id) }

// RunJob runs one frontend job for its tenant and returns the answer with
// its result set. Errors caused by the request are gRPC InvalidArgument
// statuses; a trace lookup that could not read every source is not an
// error but a result with Partial set.
func (q *Querier) RunJob(ctx context.Context, job *rubatopb.QueryJob) (*rubatopb.WorkerMessage, error) {
	tenantID := job.GetTenant()
	if tenantID == "" {
		return nil, status.Error(codes.InvalidArgument, "job without a tenant")
	}
	switch k := job.GetKind().(type) {
	case *rubatopb.QueryJob_TraceById:
		res, err := q.traceByIDJob(ctx, tenantID, k.TraceById)
		if err != nil {
			return nil, jobError(err)
		}
		return &rubatopb.WorkerMessage{Result: &rubatopb.WorkerMessage_Trace{Trace: res}}, nil
	case *rubatopb.QueryJob_Search:
		res, err := q.searchJob(ctx, tenantID, k.Search)
		if err != nil {
			return nil, jobError(err)
		}
		return &rubatopb.WorkerMessage{Result: &rubatopb.WorkerMessage_Search{Search: res}}, nil
	case *rubatopb.QueryJob_Tags:
		res, err := q.SearchTagsV2(ctx, tenantID, k.Tags)
		if err != nil {
			return nil, jobError(err)
		}
		return &rubatopb.WorkerMessage{Result: &rubatopb.WorkerMessage_Tags{Tags: res}}, nil
	case *rubatopb.QueryJob_TagValues:
		res, err := q.SearchTagValuesV2(ctx, tenantID, k.TagValues)
		if err != nil {
			return nil, jobError(err)
		}
		return &rubatopb.WorkerMessage{Result: &rubatopb.WorkerMessage_TagValues{TagValues: res}}, nil
	}
	return nil, status.Errorf(codes.Unimplemented, "unknown job kind %T", job.GetKind())
}

// jobError turns request errors into InvalidArgument so the frontend
// answers 400, and keeps the text of the others.
func jobError(err error) error {
	if errors.Is(err, ErrInvalidQuery) || errors.Is(err, search.ErrInvalid) {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if errors.Is(err, ErrNoIngesters) || errors.Is(err, ErrIngestersUnavailable) {
		return status.Error(codes.Unavailable, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// ParseBlockRefs decodes the metas of a job's blocks, which must all be
// the tenant's.
func ParseBlockRefs(tenantID string, refs []*rubatopb.BlockRef) ([]*block.Meta, error) {
	metas := make([]*block.Meta, 0, len(refs))
	for _, r := range refs {
		m, err := block.ParseMeta(r.GetMetaJson())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "block ref: %v", err)
		}
		if m.TenantID != tenantID {
			return nil, status.Errorf(codes.InvalidArgument, "block %s belongs to tenant %q, not %q", m.BlockID, m.TenantID, tenantID)
		}
		metas = append(metas, m)
	}
	return metas, nil
}

func (q *Querier) traceByIDJob(ctx context.Context, tenantID string, j *rubatopb.TraceByIDJob) (*rubatopb.TraceByIDResult, error) {
	if len(j.GetTraceId()) != 16 {
		return nil, status.Errorf(codes.InvalidArgument, "trace id of %d bytes, want 16", len(j.GetTraceId()))
	}
	var id [16]byte
	copy(id[:], j.GetTraceId())
	src := sources{tenant: tenantID, ingesters: j.GetIngesters() && q.ring != nil}
	if !j.GetIngesters() {
		metas, err := ParseBlockRefs(tenantID, j.GetBlocks())
		if err != nil {
			return nil, err
		}
		for _, m := range metas {
			if blockMayHold(m, id[:]) {
				src.blocks = append(src.blocks, m)
			}
		}
	}
	// Bounded as the querier's own lookups (bounds.go): the tenant's
	// max_bytes_per_trace, the process's concurrency and byte budget. The
	// bytes are held until the result is handed to the worker.
	maxBytes := 0
	if q.limits != nil {
		maxBytes = q.limits.For(tenantID).MaxBytesPerTrace
	}
	limit := q.gate.answerLimit(maxBytes)
	release, err := q.gate.enter(ctx, limit, func(reason string) { q.refusedLookups.WithLabelValues(reason).Inc() })
	if err != nil {
		return nil, err
	}
	defer release()
	td, err := q.lookup(ctx, id, src, NewAdmission(limit))
	res := &rubatopb.TraceByIDResult{}
	if td != nil && len(td.ResourceSpans) > 0 {
		res.Trace = &rubatopb.Trace{ResourceSpans: td.ResourceSpans}
	}
	var perr *PartialError
	switch {
	case errors.As(err, &perr):
		res.TruncatedAt = int32(min(perr.MaxBytes, math.MaxInt32))
		if perr.Sources != nil {
			res.Partial = perr.Sources.Error()
		}
	case err != nil:
		res.Partial = err.Error()
	}
	return res, nil
}

func (q *Querier) searchJob(ctx context.Context, tenantID string, j *rubatopb.SearchJob) (*rubatopb.SearchResponse, error) {
	req := j.GetRequest()
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "search job without a request")
	}
	if _, err := search.ParseQuery(req.Query); err != nil {
		return nil, invalid(err)
	}
	base := search.Job{Tenant: tenantID, Query: req.Query, Limit: req.Limit, SpansPerSpanSet: req.SpansPerSpanSet, Start: req.Start, End: req.End}
	if j.GetIngesters() {
		// Every ingester of this querier's ring, as one job of the frontend.
		skip, err := search.ParseBlockIDs(j.GetSkipBlocks())
		if err != nil {
			return nil, invalid(err)
		}
		base.SkipBlocks = skip
		set, err := q.ingesterSet()
		if err != nil {
			return nil, err
		}
		jobs := make([]search.Job, len(set.addrs))
		for i, a := range set.addrs {
			jobs[i] = base
			jobs[i].Ingester = a
		}
		return search.Run(ctx, jobs, q.searchExec(set), q.search.cfg.ConcurrentJobs, req.Limit, req.SpansPerSpanSet, nil)
	}
	metas, err := ParseBlockRefs(tenantID, j.GetBlocks())
	if err != nil {
		return nil, err
	}
	q.search.jobs.WithLabelValues("blocks").Inc()
	pq, err := search.ParseQuery(req.Query)
	if err != nil {
		return nil, invalid(err)
	}
	readers := make([]*block.Reader, 0, len(metas))
	for _, m := range metas {
		readers = append(readers, block.Open(q.store, m, q.cache))
	}
	sreq := search.Request{Query: pq, Start: req.Start, End: req.End, SpansPerSpanSet: int(req.SpansPerSpanSet)}
	resp, err := search.SearchBlocks(ctx, readers, sreq, int(req.Limit))
	if err == nil {
		q.search.inspBytes.Add(float64(resp.GetMetrics().GetInspectedBytes()))
	}
	return resp, err
}
