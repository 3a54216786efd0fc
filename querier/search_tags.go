package querier

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/ingester/client"
	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/search"
	"github.com/rubatodb/rubato/pkg/traceql"
)

// Tag calls ask every ingester and every backend block overlapping the
// request's range; with no range, every block: stored data is always seen.
// Without a query filter a block's tag names (values of one tag) are read
// once and cached, blocks being immutable; with a filter, the block's
// candidate traces are evaluated.

// SearchTagsV2 returns tag names by scope.
func (q *Querier) SearchTagsV2(ctx context.Context, tenantID string, req *rubatopb.SearchTagsRequest) (resp *rubatopb.SearchTagsV2Response, err error) {
	start := time.Now()
	defer func() { q.search.observe("tags", start, err) }()
	if !search.ValidTagScope(req.Scope) {
		return nil, fmt.Errorf("%w: unknown tag scope %q (want resource, span, event, link, instrumentation, intrinsic or all)", ErrInvalidQuery, req.Scope)
	}
	pq, err := parseFilter(req.Query)
	if err != nil {
		return nil, err
	}
	names := search.NewTagNames(int(req.MaxTagsPerScope), q.search.cfg.MaxTagBytes)
	if req.Scope == search.ScopeIntrinsic {
		return names.Response(req.Scope), nil
	}
	var mu sync.Mutex
	m, err := q.tagSources(ctx, tenantID, req.Start, req.End,
		func(ctx context.Context, c rubatopb.IngesterClient) error {
			r, err := c.SearchTags(ctx, &rubatopb.SearchTagsRequest{Scope: req.Scope, Query: req.Query, Start: req.Start, End: req.End, MaxTagsPerScope: req.MaxTagsPerScope})
			if err != nil {
				return err
			}
			mu.Lock()
			names.Merge(r)
			mu.Unlock()
			return nil
		},
		func(ctx context.Context, r *block.Reader) error {
			if pq == nil {
				got, err := q.blockTagNames(ctx, r)
				if err != nil {
					return err
				}
				mu.Lock()
				names.Merge(got)
				mu.Unlock()
				return nil
			}
			local := search.NewTagNames(int(req.MaxTagsPerScope), q.search.cfg.MaxTagBytes)
			if err := search.EachTrace(ctx, r, pq, req.Start, req.End, func(td *tracev1.TracesData) error { return local.AddTrace(pq, td) }); err != nil {
				return err
			}
			mu.Lock()
			names.Merge(local.Response(""))
			mu.Unlock()
			return nil
		})
	if err != nil {
		return nil, invalid(err)
	}
	resp = names.Response(req.Scope)
	resp.Metrics = m
	return resp, nil
}

// SearchTagValuesV2 returns the typed values of one tag.
func (q *Querier) SearchTagValuesV2(ctx context.Context, tenantID string, req *rubatopb.SearchTagValuesRequest) (resp *rubatopb.SearchTagValuesV2Response, err error) {
	start := time.Now()
	defer func() { q.search.observe("tag_values", start, err) }()
	tag, err := search.ParseTag(req.TagName)
	if err != nil {
		return nil, invalid(err)
	}
	pq, err := parseFilter(req.Query)
	if err != nil {
		return nil, err
	}
	vals := search.NewTagValues(int(req.MaxTagValues), q.search.cfg.MaxTagBytes)
	var mu sync.Mutex
	m, err := q.tagSources(ctx, tenantID, req.Start, req.End,
		func(ctx context.Context, c rubatopb.IngesterClient) error {
			r, err := c.SearchTagValues(ctx, &rubatopb.SearchTagValuesRequest{TagName: req.TagName, Query: req.Query, Start: req.Start, End: req.End, MaxTagValues: req.MaxTagValues})
			if err != nil {
				return err
			}
			mu.Lock()
			vals.Merge(r)
			mu.Unlock()
			return nil
		},
		func(ctx context.Context, r *block.Reader) error {
			local := search.NewTagValues(int(req.MaxTagValues), q.search.cfg.MaxTagBytes)
			if pq == nil {
				got, err := q.blockTagValues(ctx, r, tag)
				if err != nil {
					return err
				}
				local.Merge(got)
			} else if err := search.EachTrace(ctx, r, pq, req.Start, req.End, func(td *tracev1.TracesData) error { return local.AddTrace(tag, pq, td) }); err != nil {
				return err
			}
			mu.Lock()
			vals.Merge(local.Response())
			mu.Unlock()
			return nil
		})
	if err != nil {
		return nil, invalid(err)
	}
	resp = vals.Response()
	resp.Metrics = m
	return resp, nil
}

// parseFilter parses a tag call's TraceQL filter; nil when it keeps every
// span.
func parseFilter(s string) (*traceql.Query, error) {
	if s == "" {
		return nil, nil
	}
	pq, err := search.ParseQuery(s)
	if err != nil {
		return nil, invalid(err)
	}
	if pq.IsMatchAll() {
		return nil, nil
	}
	return pq, nil
}

// tagSources runs fromIngester on every ingester and fromBlock on every
// backend block overlapping [start, end], with bounded concurrency. Up to
// the replication set's MaxErrors ingesters may fail (ingesterSet).
func (q *Querier) tagSources(ctx context.Context, tenantID string, start, end uint32,
	fromIngester func(context.Context, rubatopb.IngesterClient) error,
	fromBlock func(context.Context, *block.Reader) error,
) (*rubatopb.MetadataMetrics, error) {
	set, err := q.ingesterSet()
	if err != nil {
		return nil, err
	}
	addrs := set.addrs
	tr := search.TimeRange{}
	if start != 0 {
		tr.Start = time.Unix(int64(start), 0)
	}
	if end != 0 {
		tr.End = time.Unix(int64(end)+1, 0)
	}
	var metas []*block.Meta
	m := &rubatopb.MetadataMetrics{}
	for _, b := range q.poller.Metas(tenantID) {
		if tr.Overlaps(b.StartTime, b.EndTime) {
			metas = append(metas, b)
			m.TotalBlockBytes += uint64(b.Size)
		}
	}
	m.TotalBlocks = uint32(len(metas))
	m.TotalJobs = uint32(len(addrs) + len(metas))
	var mu sync.Mutex
	err = runBounded(ctx, len(addrs)+len(metas), q.search.cfg.ConcurrentJobs, func(ctx context.Context, i int) error {
		var err error
		if i < len(addrs) {
			var c rubatopb.IngesterClient
			if c, err = q.pool.Get(addrs[i]); err == nil {
				cctx, cancel := context.WithTimeout(client.WithTenant(ctx, tenantID), q.cfg.QueryIngestersTimeout)
				err = fromIngester(cctx, c)
				cancel()
			}
			if err != nil {
				// Within the set's tolerance, its replicas answer for it.
				if err := set.fail(ctx, fmt.Errorf("ingester %s: %w", addrs[i], err)); err != nil {
					return err
				}
			}
		} else {
			b := metas[i-len(addrs)]
			err = fromBlock(ctx, block.Open(q.store, b, q.cache))
			if errors.Is(err, backend.ErrNotFound) {
				err = nil // compacted since the poll: its data is in another block
			}
			if err != nil {
				return fmt.Errorf("block %s: %w", b.BlockID, err)
			}
		}
		mu.Lock()
		m.CompletedJobs++
		mu.Unlock()
		return nil
	})
	return m, err
}

// blockTagNames returns every tag name of a block, cached.
func (q *Querier) blockTagNames(ctx context.Context, r *block.Reader) (*rubatopb.SearchTagsV2Response, error) {
	key := tagKey{block: r.Meta().BlockID}
	if v, ok := q.search.tags.get(key); ok {
		return v.(*rubatopb.SearchTagsV2Response), nil
	}
	names := search.NewTagNames(0, q.search.cfg.MaxTagBytes)
	err := search.BlockTagNames(ctx, r, names)
	if err != nil {
		return nil, err
	}
	resp := names.Response("")
	q.search.tags.put(key, resp)
	return resp, nil
}

// blockTagValues returns every value of tag in a block, cached.
func (q *Querier) blockTagValues(ctx context.Context, r *block.Reader, tag search.Tag) (*rubatopb.SearchTagValuesV2Response, error) {
	key := tagKey{block: r.Meta().BlockID, scope: tag.Scope, name: tag.Name, values: true}
	if v, ok := q.search.tags.get(key); ok {
		return v.(*rubatopb.SearchTagValuesV2Response), nil
	}
	vals := search.NewTagValues(0, q.search.cfg.MaxTagBytes)
	err := search.BlockTagValues(ctx, r, tag, vals)
	if err != nil {
		return nil, err
	}
	resp := vals.Response()
	if !vals.Full() {
		q.search.tags.put(key, resp)
	}
	return resp, nil
}

type tagKey struct {
	block       uuid.UUID
	scope, name string
	values      bool
}

// tagCache is an LRU of per-block tag lists, bounded by entry count.
type tagCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List
	items map[tagKey]*list.Element
}

type tagEntry struct {
	key tagKey
	val any
}

func newTagCache(maxEntries int) *tagCache {
	return &tagCache{max: maxEntries, ll: list.New(), items: map[tagKey]*list.Element{}}
}

func (c *tagCache) get(k tagKey) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*tagEntry).val, true
}

func (c *tagCache) put(k tagKey, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max <= 0 {
		return
	}
	if e, ok := c.items[k]; ok {
		e.Value.(*tagEntry).val = v
		c.ll.MoveToFront(e)
		return
	}
	c.items[k] = c.ll.PushFront(&tagEntry{key: k, val: v})
	for c.ll.Len() > c.max {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.items, last.Value.(*tagEntry).key)
	}
}
