package search

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// Job is one unit of a sharded search: either one ingester (everything it
// holds) or a batch of backend blocks over a time range. Jobs are plain
// values so that a query-frontend can send them to queriers.
type Job struct {
	Tenant string
	// Query is TraceQL; Limit and SpansPerSpanSet as in SearchRequest.
	Query           string
	Limit           uint32
	SpansPerSpanSet uint32
	// Start and End bound the traces searched, Unix seconds, 0 = open.
	Start, End uint32
	// Ingester is the address of the ingester to ask; empty for a block job.
	Ingester string
	// Blocks are the backend blocks of a block job.
	Blocks []uuid.UUID
	// SkipBlocks (ingester jobs) are the blocks the search's block jobs
	// read that an ingester may still hold a local copy of (compaction
	// level 0): the ingester leaves them out rather than search them
	// twice.
	SkipBlocks []uuid.UUID
	// Bytes is the total size of Blocks, for metrics.
	Bytes uint64
}

// ShardConfig says how a search is split into jobs.
type ShardConfig struct {
	// TargetBytesPerJob groups backend blocks into jobs of about this many
	// bytes (a block is never split); 0 = one block per job.
	TargetBytesPerJob uint64
	// MaxBlocksPerJob caps blocks per job; 0 = no cap.
	MaxBlocksPerJob int
}

// Plan splits req into jobs: one per ingester, then the backend blocks that
// overlap [req.Start, req.End], most recent first, in batches. Each block
// job's time range is the request's narrowed to its blocks' range, so a job
// never asks for more than its blocks can hold. The ingester jobs skip the
// ingester-cut blocks among them (Job.SkipBlocks): every block is searched
// once, in the backend.
func Plan(tenant string, req *rubatopb.SearchRequest, ingesters []string, metas []*block.Meta, cfg ShardConfig) []Job {
	base := Job{Tenant: tenant, Query: req.Query, Limit: req.Limit, SpansPerSpanSet: req.SpansPerSpanSet, Start: req.Start, End: req.End}
	jobs := make([]Job, 0, len(ingesters)+len(metas))
	tr := TimeRange{Start: unixTime(req.Start), End: unixTime(req.End)}
	var sel []*block.Meta
	var skip []uuid.UUID
	for _, m := range metas {
		if tr.Overlaps(m.StartTime, m.EndTime) {
			sel = append(sel, m)
			if m.CompactionLevel == 0 {
				skip = append(skip, m.BlockID)
			}
		}
	}
	for _, addr := range ingesters {
		j := base
		j.Ingester = addr
		j.SkipBlocks = skip
		jobs = append(jobs, j)
	}
	slices.SortFunc(sel, func(a, b *block.Meta) int {
		if c := b.EndTime.Compare(a.EndTime); c != 0 {
			return c
		}
		return a.StartTime.Compare(b.StartTime)
	})
	var cur *Job
	var lo, hi time.Time
	flush := func() {
		if cur == nil {
			return
		}
		cur.Start = max(cur.Start, uint32(lo.Unix()))
		if e := uint32(hi.Unix()) + 1; cur.End == 0 || e < cur.End {
			cur.End = e
		}
		jobs = append(jobs, *cur)
		cur = nil
	}
	for _, m := range sel {
		if cur != nil && (cur.Bytes+uint64(m.Size) > cfg.TargetBytesPerJob ||
			(cfg.MaxBlocksPerJob > 0 && len(cur.Blocks) >= cfg.MaxBlocksPerJob)) {
			flush()
		}
		if cur == nil {
			j := base
			cur = &j
			lo, hi = m.StartTime, m.EndTime
		}
		cur.Blocks = append(cur.Blocks, m.BlockID)
		cur.Bytes += uint64(m.Size)
		if m.StartTime.Before(lo) {
			lo = m.StartTime
		}
		if m.EndTime.After(hi) {
			hi = m.EndTime
		}
	}
	flush()
	return jobs
}

// Executor runs one job and returns its matches (already bounded by the
// job's limit) with metrics.
type Executor func(ctx context.Context, j Job) (*rubatopb.SearchResponse, error)

// Run executes jobs with at most concurrency at once (a limited search
// starts with one block job and widens, see blockWidth), merges their results
// and returns when every job is done or, as soon as limit traces are found,
// cancelling the jobs still running. progress, if non-nil, is called (from
// one goroutine at a time) after each finished job with a cumulative partial
// response; it must encode or copy it before returning, as the traces in it
// are merged further. The first job error fails the search; ctx's error is
// returned if it ends first.
func Run(ctx context.Context, jobs []Job, exec Executor, concurrency int, limit, spss uint32,
	progress func(*rubatopb.SearchResponse),
) (*rubatopb.SearchResponse, error) {
	if concurrency < 1 {
		concurrency = 1
	}
	parent := ctx
	ctx, cancel := context.WithCancel(withBudget(parent, int(limit)))
	defer cancel()

	metrics := &rubatopb.SearchMetrics{TotalJobs: uint32(len(jobs))}
	for _, j := range jobs {
		metrics.TotalBlocks += uint32(len(j.Blocks))
		metrics.TotalBlockBytes += j.Bytes
	}
	comb := NewCombiner(int(limit), int(spss))

	type result struct {
		resp     *rubatopb.SearchResponse
		err      error
		ingester bool
	}
	results := make(chan result, len(jobs))
	// blockWidth bounds the block jobs in flight: all of concurrency for
	// an unlimited search; for a limited one it starts at one and doubles
	// after each block job that leaves the limit unmet, because a selective
	// query usually fills its limit from the first (newest) blocks and the
	// jobs behind them would decode candidates only to throw them away.
	// Ingester jobs lead the plan and are not held back.
	blockWidth := concurrency
	if limit > 0 {
		blockWidth = 1
	}
	started, done, blocks := 0, 0, 0
	var firstErr error
	handle := func(r result) {
		done++
		if !r.ingester {
			blocks--
		}
		if r.err != nil {
			if firstErr == nil && ctx.Err() == nil {
				firstErr = r.err
			}
			cancel()
			return
		}
		metrics.CompletedJobs++
		if m := r.resp.GetMetrics(); m != nil {
			metrics.InspectedTraces += m.InspectedTraces
			metrics.InspectedBytes += m.InspectedBytes
			metrics.InspectedSpans += m.InspectedSpans
		}
		for _, t := range r.resp.GetTraces() {
			comb.Add(t)
		}
		if progress != nil {
			progress(snapshot(comb, metrics))
		}
		if comb.Full() {
			cancel()
			return
		}
		if !r.ingester {
			blockWidth = min(concurrency, 2*blockWidth) // too little so far: widen
		}
	}
	// A goroutine starts only below concurrency (and a block job only
	// below blockWidth), so at most concurrency goroutines (and their
	// memory) exist per query; finished jobs are handled while it waits.
	for _, j := range jobs {
		for ctx.Err() == nil && (started-done >= concurrency || j.Ingester == "" && blocks >= blockWidth) {
			select {
			case r := <-results:
				handle(r)
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		started++
		if j.Ingester == "" {
			blocks++
		}
		go func(j Job) {
			resp, err := exec(ctx, j)
			if err != nil {
				err = fmt.Errorf("search job %s: %w", j.describe(), err)
			}
			results <- result{resp, err, j.Ingester != ""}
		}(j)
	}
	for done < started {
		handle(<-results)
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if err := parent.Err(); err != nil && !comb.Full() {
		return nil, err
	}
	return snapshot(comb, metrics), nil
}

func snapshot(c *Combiner, m *rubatopb.SearchMetrics) *rubatopb.SearchResponse {
	return &rubatopb.SearchResponse{Traces: c.Result(), Metrics: &rubatopb.SearchMetrics{
		InspectedTraces: m.InspectedTraces, InspectedBytes: m.InspectedBytes, InspectedSpans: m.InspectedSpans,
		TotalBlocks: m.TotalBlocks, TotalBlockBytes: m.TotalBlockBytes,
		CompletedJobs: m.CompletedJobs, TotalJobs: m.TotalJobs,
	}}
}

func (j Job) describe() string {
	if j.Ingester != "" {
		return "ingester " + j.Ingester
	}
	return fmt.Sprintf("%d blocks", len(j.Blocks))
}

// TimeRange is a closed time interval; zero ends are open.
type TimeRange struct{ Start, End time.Time }

// Overlaps reports whether [start, end] meets the range.
func (r TimeRange) Overlaps(start, end time.Time) bool {
	if !r.Start.IsZero() && end.Before(r.Start) {
		return false
	}
	if !r.End.IsZero() && start.After(r.End) {
		return false
	}
	return true
}

// unixTime turns Unix seconds into a time, 0 = zero time (open).
func unixTime(s uint32) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(int64(s), 0)
}

// budget lets the jobs of one Run in this process stop as soon as, all
// together, they have found limit distinct traces, instead of each finding
// limit on its own. Jobs run elsewhere (distributed mode) do not see it and
// stop at their own limit, which is still correct.
type budget struct {
	limit int
	mu    sync.Mutex
	seen  map[string]struct{}
}

type budgetKey struct{}

func withBudget(ctx context.Context, limit int) context.Context {
	if limit <= 0 {
		return ctx
	}
	return context.WithValue(ctx, budgetKey{}, &budget{limit: limit, seen: map[string]struct{}{}})
}

func budgetFrom(ctx context.Context) *budget {
	b, _ := ctx.Value(budgetKey{}).(*budget)
	return b
}

// found records a trace and reports whether the budget is spent.
func (b *budget) found(id string) bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen[id] = struct{}{}
	return len(b.seen) >= b.limit
}

// spent reports whether limit distinct traces were found.
func (b *budget) spent() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.seen) >= b.limit
}

// BlockIDBytes encodes block IDs for a request (16 bytes each).
func BlockIDBytes(ids []uuid.UUID) [][]byte {
	out := make([][]byte, len(ids))
	for i := range ids {
		out[i] = ids[i][:]
	}
	return out
}

// ParseBlockIDs decodes what BlockIDBytes encodes; anything but 16 bytes
// is ErrInvalid.
func ParseBlockIDs(b [][]byte) ([]uuid.UUID, error) {
	ids := make([]uuid.UUID, len(b))
	for i, x := range b {
		id, err := uuid.FromBytes(x)
		if err != nil {
			return nil, fmt.Errorf("%w: block id: %w", ErrInvalid, err)
		}
		ids[i] = id
	}
	return ids, nil
}
