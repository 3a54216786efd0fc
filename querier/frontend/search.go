package frontend

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/search"
	"github.com/rubatodb/rubato/querier"
)

// ingestersJob marks, in a plan of search.Plan, the one job that asks the
// querier to search every ingester of its ring (the frontend does not know
// the ingesters; queriers do).
const ingestersJob = "ingesters"

// Search splits req into one job for the ingesters and jobs over batches
// of the backend blocks overlapping its time range (search.Plan, each job's
// range narrowed to its blocks), runs them on the queriers with at most
// query_frontend.search.concurrent_jobs queued or running, and merges the
// answers (search.Run). Once limit traces are found the jobs still queued
// leave the queue and the running ones are cancelled.
func (f *Frontend) Search(ctx context.Context, tenant string, req *rubatopb.SearchRequest,
	progress func(*rubatopb.SearchResponse),
) (*rubatopb.SearchResponse, error) {
	if _, err := search.ParseQuery(req.Query); err != nil {
		return nil, fmt.Errorf("%w: %w", querier.ErrInvalidQuery, err)
	}
	metas := f.poller.Metas(tenant)
	jobs := search.Plan(tenant, req, []string{ingestersJob}, metas, search.ShardConfig{TargetBytesPerJob: f.cfg.Search.TargetBytesPerJob})
	byID := make(map[uuid.UUID]*block.Meta, len(metas))
	for _, m := range metas {
		byID[m.BlockID] = m
	}
	exec := func(ctx context.Context, j search.Job) (*rubatopb.SearchResponse, error) {
		sj, kind, err := searchJobMessage(j, byID)
		if err != nil {
			return nil, err
		}
		m, err := f.do(ctx, tenant, kind, &rubatopb.QueryJob{Kind: &rubatopb.QueryJob_Search{Search: sj}})
		if err != nil {
			return nil, err
		}
		return m.GetSearch(), nil
	}
	return search.Run(ctx, jobs, exec, f.cfg.Search.ConcurrentJobs, req.Limit, req.SpansPerSpanSet, progress)
}

// searchJobMessage is the job a querier is sent for j of a plan
// (byID: the metas the plan was made from), and its kind for metrics.
func searchJobMessage(j search.Job, byID map[uuid.UUID]*block.Meta) (*rubatopb.SearchJob, string, error) {
	sj := &rubatopb.SearchJob{Request: &rubatopb.SearchRequest{
		Query: j.Query, Limit: j.Limit, SpansPerSpanSet: j.SpansPerSpanSet, Start: j.Start, End: j.End,
	}}
	if j.Ingester == ingestersJob {
		sj.Ingesters = true
		sj.SkipBlocks = search.BlockIDBytes(j.SkipBlocks)
		return sj, "search_ingesters", nil
	}
	ms := make([]*block.Meta, len(j.Blocks))
	for i, id := range j.Blocks {
		ms[i] = byID[id]
	}
	refs, err := blockRefs(ms)
	if err != nil {
		return nil, "", err
	}
	sj.Blocks = refs
	return sj, "search_blocks", nil
}

// SearchTagsV2 runs the tag-name call as one job on a querier (which asks
// its ingesters and the backend blocks itself).
func (f *Frontend) SearchTagsV2(ctx context.Context, tenant string, req *rubatopb.SearchTagsRequest) (*rubatopb.SearchTagsV2Response, error) {
	m, err := f.do(ctx, tenant, "tags", &rubatopb.QueryJob{Kind: &rubatopb.QueryJob_Tags{Tags: req}})
	if err != nil {
		return nil, err
	}
	if m.GetTags() == nil {
		return nil, errors.New("querier answered a tags job without tags")
	}
	return m.GetTags(), nil
}

// SearchTagValuesV2 runs the tag-values call as one job on a querier.
func (f *Frontend) SearchTagValuesV2(ctx context.Context, tenant string, req *rubatopb.SearchTagValuesRequest) (*rubatopb.SearchTagValuesV2Response, error) {
	m, err := f.do(ctx, tenant, "tag_values", &rubatopb.QueryJob{Kind: &rubatopb.QueryJob_TagValues{TagValues: req}})
	if err != nil {
		return nil, err
	}
	if m.GetTagValues() == nil {
		return nil, errors.New("querier answered a tag-values job without values")
	}
	return m.GetTagValues(), nil
}

// blockRefs encodes metas for a job.
func blockRefs(metas []*block.Meta) ([]*rubatopb.BlockRef, error) {
	out := make([]*rubatopb.BlockRef, 0, len(metas))
	for _, m := range metas {
		b, err := m.Marshal()
		if err != nil {
			return nil, fmt.Errorf("block %s meta: %w", m.BlockID, err)
		}
		out = append(out, &rubatopb.BlockRef{MetaJson: b})
	}
	return out, nil
}
