package search

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/rubatopb"
)

func meta(startSec, endSec int64, size int64) *block.Meta {
	return &block.Meta{BlockID: uuid.New(), StartTime: time.Unix(startSec, 0), EndTime: time.Unix(endSec, 0), Size: size}
}

func TestPlan(t *testing.T) {
	metas := []*block.Meta{
		meta(100, 200, 10), meta(300, 400, 10), meta(500, 600, 10), meta(700, 800, 10), meta(900, 1000, 10),
	}
	metas[3].CompactionLevel = 1 // never on an ingester
	req := &rubatopb.SearchRequest{Query: "{}", Limit: 5, Start: 350, End: 950}
	jobs := Plan("t", req, []string{"a:1", "b:1"}, metas, ShardConfig{TargetBytesPerJob: 20})
	require.Len(t, jobs, 4) // 2 ingesters + 4 overlapping blocks in pairs
	require.Equal(t, "a:1", jobs[0].Ingester)
	require.Equal(t, "b:1", jobs[1].Ingester)
	require.Equal(t, uint32(350), jobs[0].Start)
	require.Equal(t, uint32(950), jobs[0].End)
	// Most recent blocks first.
	require.Equal(t, []uuid.UUID{metas[4].BlockID, metas[3].BlockID}, jobs[2].Blocks)
	require.Equal(t, []uuid.UUID{metas[2].BlockID, metas[1].BlockID}, jobs[3].Blocks)
	// Time range narrowed to the blocks', never widened.
	require.Equal(t, uint32(700), jobs[2].Start)
	require.Equal(t, uint32(950), jobs[2].End)
	require.Equal(t, uint32(350), jobs[3].Start)
	require.Equal(t, uint32(601), jobs[3].End)
	require.Equal(t, uint64(20), jobs[3].Bytes)
	// The ingester jobs skip the ingester-cut blocks the block jobs read,
	// and only those: not a compacted one, nor one out of range.
	require.ElementsMatch(t, []uuid.UUID{metas[1].BlockID, metas[2].BlockID, metas[4].BlockID}, jobs[0].SkipBlocks)
	require.Equal(t, jobs[0].SkipBlocks, jobs[1].SkipBlocks)
	require.Empty(t, jobs[2].SkipBlocks)

	one := Plan("t", &rubatopb.SearchRequest{}, nil, metas, ShardConfig{TargetBytesPerJob: 1000, MaxBlocksPerJob: 2})
	require.Len(t, one, 3)
	require.Len(t, one[2].Blocks, 1)
}

func md(id string, start uint64, spans ...string) *rubatopb.TraceSearchMetadata {
	ss := &rubatopb.SpanSet{Matched: uint32(len(spans))}
	for _, s := range spans {
		ss.Spans = append(ss.Spans, &rubatopb.Span{SpanID: s, StartTimeUnixNano: start})
	}
	return &rubatopb.TraceSearchMetadata{TraceID: id, StartTimeUnixNano: start, SpanSet: ss, SpanSets: []*rubatopb.SpanSet{ss}}
}

func TestRunLimitCancelsOutstanding(t *testing.T) {
	var jobs []Job
	for i := range 10 {
		jobs = append(jobs, Job{Ingester: fmt.Sprint(i)})
	}
	var cancelled atomic.Int32
	exec := func(ctx context.Context, j Job) (*rubatopb.SearchResponse, error) {
		if j.Ingester == "0" || j.Ingester == "1" {
			return &rubatopb.SearchResponse{Traces: []*rubatopb.TraceSearchMetadata{md("t"+j.Ingester, 1, "s")}}, nil
		}
		<-ctx.Done() // a slow job: only the limit can end it
		cancelled.Add(1)
		return nil, ctx.Err()
	}
	done := make(chan struct{})
	var resp *rubatopb.SearchResponse
	var err error
	go func() {
		resp, err = Run(context.Background(), jobs, exec, 3, 2, 0, nil)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return once the limit was reached")
	}
	require.NoError(t, err)
	require.Len(t, resp.Traces, 2)
	require.Equal(t, uint32(10), resp.Metrics.TotalJobs)
	require.Less(t, resp.Metrics.CompletedJobs, uint32(10))
	require.Positive(t, cancelled.Load())
}

func TestRunConcurrencyAndProgress(t *testing.T) {
	var jobs []Job
	for i := range 20 {
		jobs = append(jobs, Job{Blocks: []uuid.UUID{uuid.New()}, Bytes: 7, Query: fmt.Sprint(i)})
	}
	var inFlight, peak atomic.Int32
	exec := func(ctx context.Context, j Job) (*rubatopb.SearchResponse, error) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		inFlight.Add(-1)
		// Every job finds the same trace with another span, and one own trace.
		return &rubatopb.SearchResponse{
			Traces:  []*rubatopb.TraceSearchMetadata{md("shared", 10, "s"+j.Query), md("own"+j.Query, 5, "x")},
			Metrics: &rubatopb.SearchMetrics{InspectedTraces: 2, InspectedBytes: 100},
		}, nil
	}
	var mu sync.Mutex
	var completed []uint32
	resp, err := Run(context.Background(), jobs, exec, 4, 0, 3, func(r *rubatopb.SearchResponse) {
		mu.Lock()
		defer mu.Unlock()
		completed = append(completed, r.Metrics.CompletedJobs)
		require.Equal(t, uint32(20), r.Metrics.TotalJobs)
	})
	require.NoError(t, err)
	require.LessOrEqual(t, peak.Load(), int32(4))
	require.Len(t, completed, 20)
	for i, c := range completed {
		require.Equal(t, uint32(i+1), c)
	}
	require.Len(t, resp.Traces, 21)
	require.Equal(t, "shared", resp.Traces[0].TraceID) // most recent first
	require.Len(t, resp.Traces[0].SpanSets, 1)
	require.Len(t, resp.Traces[0].SpanSets[0].Spans, 3) // spss
	require.Equal(t, uint32(20), resp.Traces[0].SpanSets[0].Matched)
	require.Equal(t, uint32(20), resp.Metrics.TotalBlocks)
	require.Equal(t, uint64(140), resp.Metrics.TotalBlockBytes)
	require.Equal(t, uint64(2000), resp.Metrics.InspectedBytes)
}

func TestRunErrorFailsSearch(t *testing.T) {
	boom := errors.New("boom")
	jobs := []Job{{Ingester: "ok"}, {Ingester: "bad"}, {Ingester: "slow"}}
	exec := func(ctx context.Context, j Job) (*rubatopb.SearchResponse, error) {
		switch j.Ingester {
		case "bad":
			return nil, boom
		case "slow":
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return &rubatopb.SearchResponse{}, nil
	}
	_, err := Run(context.Background(), jobs, exec, 3, 0, 0, nil)
	require.ErrorIs(t, err, boom)
	require.ErrorContains(t, err, "ingester bad")
}

func TestRunParentCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	exec := func(ctx context.Context, j Job) (*rubatopb.SearchResponse, error) {
		cancel()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	_, err := Run(ctx, []Job{{}, {}, {}}, exec, 1, 0, 0, nil)
	require.ErrorIs(t, err, context.Canceled)
}

func TestCombiner(t *testing.T) {
	c := NewCombiner(2, 2)
	a := md("a", 100, "1", "2")
	a.RootServiceName = ""
	a.DurationMs = 5
	require.True(t, c.Add(a))
	b := md("a", 50, "2", "3")
	b.RootServiceName, b.RootTraceName, b.DurationMs = "svc", "root", 9
	b.ServiceStats = map[string]*rubatopb.ServiceStats{"svc": {SpanCount: 3, ErrorCount: 1}}
	require.True(t, c.Add(b))
	require.True(t, c.Add(md("b", 200, "9")))
	require.False(t, c.Add(md("c", 300, "8")), "a third trace beyond limit 2")
	require.True(t, c.Add(md("b", 200, "9")), "merging into a kept trace is allowed at the limit")
	require.True(t, c.Full())

	res := c.Result()
	require.Len(t, res, 2)
	require.Equal(t, "b", res[0].TraceID)
	got := res[1]
	require.Equal(t, "svc", got.RootServiceName)
	require.Equal(t, "root", got.RootTraceName)
	require.Equal(t, uint64(50), got.StartTimeUnixNano)
	require.Equal(t, uint32(9), got.DurationMs)
	require.Equal(t, uint32(3), got.ServiceStats["svc"].SpanCount)
	require.Len(t, got.SpanSets, 1)
	require.Same(t, got.SpanSets[0], got.SpanSet)
	require.Len(t, got.SpanSets[0].Spans, 2, "spss bounds the merged spanset")
	require.Equal(t, uint32(3), got.SpanSets[0].Matched, "three distinct spans matched")
	require.Len(t, res[0].SpanSets[0].Spans, 1, "the same span twice is one span")
}

func TestCombinerByGroups(t *testing.T) {
	c := NewCombiner(0, 0)
	by := func(v string, spans ...string) *rubatopb.TraceSearchMetadata {
		m := md("t", 1, spans...)
		m.SpanSets[0].Attributes = append(m.SpanSets[0].Attributes, strKV("by(span.x)", v))
		return m
	}
	c.Add(by("a", "1"))
	c.Add(by("b", "2"))
	c.Add(by("a", "3"))
	res := c.Result()
	require.Len(t, res, 1)
	require.Len(t, res[0].SpanSets, 2)
	require.Len(t, res[0].SpanSets[0].Spans, 2)
	require.Len(t, res[0].SpanSets[1].Spans, 1)
}

func strKV(k, v string) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: v}}}
}

// TestRunSharedBudget: jobs of one Run stop once they have found limit
// distinct traces together, not limit each.
func TestRunSharedBudget(t *testing.T) {
	var produced atomic.Int32
	exec := func(ctx context.Context, j Job) (*rubatopb.SearchResponse, error) {
		b := budgetFrom(ctx)
		var out []*rubatopb.TraceSearchMetadata
		for i := range 100 {
			if b.spent() {
				break
			}
			produced.Add(1)
			id := fmt.Sprintf("%s-%d", j.Ingester, i)
			out = append(out, md(id, 1, "s"))
			if b.found(id) {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		return &rubatopb.SearchResponse{Traces: out}, nil
	}
	jobs := []Job{{Ingester: "a"}, {Ingester: "b"}, {Ingester: "c"}, {Ingester: "d"}}
	resp, err := Run(context.Background(), jobs, exec, 4, 10, 0, nil)
	require.NoError(t, err)
	require.Len(t, resp.Traces, 10)
	require.LessOrEqual(t, produced.Load(), int32(10+4), "at most one extra trace per concurrent job")
}

// TestRunLimitedSearchWidens: a limited search runs its ingester jobs and
// one block job, and doubles the block jobs in flight only after a block
// job leaves the limit unmet; an unlimited one starts at full concurrency.
func TestRunLimitedSearchWidens(t *testing.T) {
	jobs := []Job{{Ingester: "a"}, {Ingester: "b"}}
	for i := range 30 {
		jobs = append(jobs, Job{Blocks: []uuid.UUID{uuid.New()}, Query: fmt.Sprint(i)})
	}
	// run returns the most jobs in flight, the jobs started, and the block
	// jobs started before the first block job ended.
	run := func(limit uint32, found func(j Job) int) (peak, started, beforeFirst int32) {
		var inFlight, blocksStarted atomic.Int32
		var mu sync.Mutex
		exec := func(ctx context.Context, j Job) (*rubatopb.SearchResponse, error) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			mu.Lock()
			peak = max(peak, n)
			started++
			mu.Unlock()
			if j.Ingester != "" {
				return &rubatopb.SearchResponse{}, nil // fast and empty
			}
			blocksStarted.Add(1)
			time.Sleep(5 * time.Millisecond)
			mu.Lock()
			if beforeFirst == 0 {
				beforeFirst = blocksStarted.Load()
			}
			mu.Unlock()
			var out []*rubatopb.TraceSearchMetadata
			for i := range found(j) {
				out = append(out, md(fmt.Sprintf("%s%s-%d", j.Ingester, j.Query, i), 1, "s"))
			}
			return &rubatopb.SearchResponse{Traces: out}, nil
		}
		_, err := Run(context.Background(), jobs, exec, 8, limit, 0, nil)
		require.NoError(t, err)
		return peak, started, beforeFirst
	}
	// The first block job fills the limit: nothing behind it starts.
	_, started, _ := run(5, func(j Job) int {
		if j.Query == "0" {
			return 5
		}
		return 0
	})
	require.Equal(t, int32(3), started, "2 ingester jobs and 1 block job")

	// Nothing matches: one block job at first, then wider up to the
	// concurrency, and every job runs.
	peak, started, beforeFirst := run(5, func(Job) int { return 0 })
	require.Equal(t, int32(len(jobs)), started)
	require.Equal(t, int32(1), beforeFirst)
	require.Equal(t, int32(8), peak, "widened to the concurrency")

	// Unlimited: block jobs start together.
	peak, _, beforeFirst = run(0, func(Job) int { return 0 })
	require.Greater(t, beforeFirst, int32(1))
	require.Equal(t, int32(8), peak)
}
