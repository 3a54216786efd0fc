package frontend

import (
	"context"
	"errors"
	"fmt"
	"sync"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/model/combine"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/querier"
)

// FindTraceByID splits a lookup into one job for the ingesters and up to
// query_frontend.trace_by_id.query_shards jobs over the backend blocks whose
// trace-ID and time ranges admit id, runs them all at once on the queriers
// and combines the parts. A job that fails (after its retries) makes the
// answer partial, as a failed source does in the querier: the handler then
// reports PARTIAL, or 503 when nothing was found.
//
// The answer is bounded as a querier's is (querier.Admission): each job's
// answer is cut at the tenant's max_bytes_per_trace by its querier, and
// the frontend admits the jobs' spans, copies once, into one answer cut at
// the same limit; once it is full, the jobs still running are cancelled.
// A cut answer is reported with Tempo's too-large message.
func (f *Frontend) FindTraceByID(ctx context.Context, tenant string, id [16]byte, tr querier.TimeRange) (*tracev1.TracesData, error) {
	var metas []*block.Meta
	for _, m := range f.poller.Metas(tenant) {
		if querier.BlockMayHold(m, id[:]) && tr.Overlaps(m) {
			metas = append(metas, m)
		}
	}
	jobs := []*rubatopb.TraceByIDJob{{TraceId: id[:], Ingesters: true}}
	for _, shard := range shardBlocks(metas, f.cfg.TraceByID.QueryShards) {
		refs, err := blockRefs(shard)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, &rubatopb.TraceByIDJob{TraceId: id[:], Blocks: refs})
	}
	maxBytes := 0
	if f.limits != nil {
		maxBytes = f.limits.For(tenant).MaxBytesPerTrace
	}
	adm := querier.NewAdmission(maxBytes)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu        sync.Mutex
		c         combine.Combiner
		found     bool
		errs      []error
		wg        sync.WaitGroup
		truncated int
	)
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := f.do(ctx, tenant, "trace_by_id", &rubatopb.QueryJob{Kind: &rubatopb.QueryJob_TraceById{TraceById: j}})
			mu.Lock()
			defer mu.Unlock()
			name := fmt.Sprintf("job %d of %d (%d blocks)", i+1, len(jobs), len(j.Blocks))
			if j.Ingesters {
				name = "ingesters"
			}
			if err != nil {
				if !adm.Full() {
					errs = append(errs, fmt.Errorf("%s: %w", name, err))
				}
				return
			}
			res := m.GetTrace()
			if p := res.GetPartial(); p != "" {
				errs = append(errs, fmt.Errorf("%s: %s", name, p))
			}
			if t := res.GetTruncatedAt(); t > 0 {
				truncated = max(truncated, int(t))
			}
			if t := res.GetTrace(); t != nil && len(t.ResourceSpans) > 0 {
				found = true
				td := &tracev1.TracesData{ResourceSpans: t.ResourceSpans}
				if !adm.Admit(td) {
					cancel() // full: the jobs still running cannot add to it
				}
				c.Add(td)
			}
		}()
	}
	wg.Wait()
	if adm.Full() {
		truncated = adm.Max()
	}
	if !found {
		return nil, partial(errs, 0)
	}
	td := c.Result()
	if td == nil {
		td = &tracev1.TracesData{} // found, but not one span fits
	}
	combine.FillRequired(td)
	return td, partial(errs, truncated)
}

// partial is the lookup's error, as querier.TraceFinder defines it: nil,
// ErrTooManyRequests when every failed job was refused by the queue, or a
// *querier.PartialError (truncated: the limit the answer was cut at).
func partial(errs []error, truncated int) error {
	if truncated > 0 {
		return &querier.PartialError{Sources: errors.Join(errs...), MaxBytes: truncated}
	}
	if len(errs) == 0 {
		return nil
	}
	refused := true
	for _, err := range errs {
		refused = refused && errors.Is(err, querier.ErrTooManyRequests)
	}
	if refused {
		return errors.Join(errs...)
	}
	return &querier.PartialError{Sources: errors.Join(errs...)}
}

// shardBlocks splits metas into at most n groups of nearly equal size,
// keeping their order.
func shardBlocks(metas []*block.Meta, n int) [][]*block.Meta {
	if len(metas) == 0 {
		return nil
	}
	n = max(min(n, len(metas)), 1)
	out := make([][]*block.Meta, 0, n)
	for i := range n {
		lo, hi := i*len(metas)/n, (i+1)*len(metas)/n
		out = append(out, metas[lo:hi])
	}
	return out
}
