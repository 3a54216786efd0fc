package integration

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/integration/minio"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/search"
)

// searchCorpus is a set of traces in which the query of searchQuery
// matches exactly the "hit" traces, on spans 1 and 2 of each.
type searchCorpus struct {
	ids  [][]byte
	hits map[string]bool // trace ID as search answers it
}

const searchQuery = `{ resource.service.name = "search-e2e" && span.case = "hit" }`

func newSearchCorpus(n int) *searchCorpus {
	c := &searchCorpus{hits: map[string]bool{}}
	for i := range n {
		id := randBytes(16)
		c.ids = append(c.ids, id)
		if i%3 == 0 {
			c.hits[search.TraceIDString(id)] = true
		}
	}
	return c
}

// request builds spans spanNos of every trace (span n always has the same
// span ID): span 0 is the root; spans 1 and 2 carry case=hit in hit traces.
func (c *searchCorpus) request(spanNos []int, at time.Time) *coltracepb.ExportTraceServiceRequest {
	ss := &tracev1.ScopeSpans{Scope: &commonv1.InstrumentationScope{Name: "search-test"}}
	ts := uint64(at.UnixNano())
	str := func(k, v string) *commonv1.KeyValue {
		return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: v}}}
	}
	for _, id := range c.ids {
		for _, n := range spanNos {
			sp := &tracev1.Span{
				TraceId: id, SpanId: spanID(id, n), Name: "op", Kind: tracev1.Span_SPAN_KIND_SERVER,
				StartTimeUnixNano: ts + uint64(n)*1000, EndTimeUnixNano: ts + uint64(n)*1000 + 500,
			}
			if n == 0 {
				sp.Name = "root-op"
			} else {
				sp.ParentSpanId = spanID(id, 0)
				val := "miss"
				if c.hits[search.TraceIDString(id)] && n <= 2 {
					val = "hit"
				}
				sp.Attributes = []*commonv1.KeyValue{str("case", val)}
			}
			ss.Spans = append(ss.Spans, sp)
		}
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracev1.ResourceSpans{{
		Resource:   &resourcev1.Resource{Attributes: []*commonv1.KeyValue{str("service.name", "search-e2e")}},
		ScopeSpans: []*tracev1.ScopeSpans{ss},
	}}}
}

// getJSON runs GET path and decodes the JSON strictly (unknown fields
// fail) into out.
func getJSON(t testing.TB, s *server, path string, out proto.Message) {
	t.Helper()
	resp, b := get(t, s.url(path), "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, b)
	require.NoError(t, protojson.UnmarshalOptions{}.Unmarshal(b, out), "%s", b)
}

// check runs the same query and tag calls and requires exactly the hit
// traces, each once, with spans 1 and 2 matched and listed once.
func (c *searchCorpus) check(t *testing.T, s *server, stage string, matched int) {
	t.Helper()
	res := &rubatopb.SearchResponse{}
	getJSON(t, s, "/api/search?limit=1000&spss=10&q="+url.QueryEscape(searchQuery), res)
	got := map[string]bool{}
	for _, tr := range res.Traces {
		require.False(t, got[tr.TraceID], "%s: trace %s listed twice", stage, tr.TraceID)
		got[tr.TraceID] = true
		require.True(t, c.hits[tr.TraceID], "%s: trace %s does not match", stage, tr.TraceID)
		require.Equal(t, "search-e2e", tr.RootServiceName, stage)
		require.Equal(t, "root-op", tr.RootTraceName, stage)
		require.Len(t, tr.SpanSets, 1, stage)
		require.Equal(t, uint32(matched), tr.SpanSets[0].Matched, "%s: trace %s", stage, tr.TraceID)
		require.Len(t, tr.SpanSets[0].Spans, matched, "%s: trace %s", stage, tr.TraceID)
		ids := map[string]bool{}
		for _, sp := range tr.SpanSets[0].Spans {
			require.False(t, ids[sp.SpanID], "%s: span %s listed twice", stage, sp.SpanID)
			ids[sp.SpanID] = true
		}
	}
	require.Len(t, got, len(c.hits), "%s: every hit trace found (metrics %v)\n", stage, res.Metrics)
	require.Equal(t, res.Metrics.TotalJobs, res.Metrics.CompletedJobs, stage)

	// Limit: exactly limit traces.
	lim := &rubatopb.SearchResponse{}
	getJSON(t, s, "/api/search?limit=3&q="+url.QueryEscape(searchQuery), lim)
	require.Len(t, lim.Traces, 3, "%s: limit", stage)

	// Tags and values without a time range see every stage, stored data too.
	tags := &rubatopb.SearchTagsV2Response{}
	getJSON(t, s, "/api/v2/search/tags?scope=span", tags)
	var spanTags []string
	for _, sc := range tags.Scopes {
		if sc.Name == "span" {
			spanTags = sc.Tags
		}
	}
	require.Contains(t, spanTags, "case", stage)
	vals := &rubatopb.SearchTagValuesV2Response{}
	getJSON(t, s, "/api/v2/search/tag/span.case/values", vals)
	var vs []string
	for _, v := range vals.TagValues {
		vs = append(vs, v.Type+":"+v.Value)
	}
	slices.Sort(vs)
	require.Equal(t, []string{"string:hit", "string:miss"}, vs, stage)
	filtered := &rubatopb.SearchTagValuesV2Response{}
	getJSON(t, s, "/api/v2/search/tag/span.case/values?q="+url.QueryEscape(`{ span.case = "hit" }`), filtered)
	require.Len(t, filtered.TagValues, 1, stage)
	require.Equal(t, "hit", filtered.TagValues[0].Value, stage)
}

func compactorConfig() string {
	return `compactor:
  compaction:
    compaction_window: 1h
    compaction_cycle: 300ms
    block_retention: 1h
    compacted_block_retention: 1s
`
}

// runSearchLifecycle checks the same search right after ingest (live),
// after flush, with a trace split between a block and live data (one span
// in both), with two blocks, after compaction, and after a restart with the
// WAL deleted (backend only).
func runSearchLifecycle(t *testing.T, s *server, blocks func() int) {
	c := newSearchCorpus(30)
	pushOTLP(t, s.otlpGRPC(), c.request([]int{0, 1}, time.Now()))
	c.check(t, s, "live, right after ingest", 1)
	s.flush(t)
	c.check(t, s, "after flush", 1)

	pushOTLP(t, s.otlpGRPC(), c.request([]int{1, 2, 3}, time.Now()))
	c.check(t, s, "block + live, span 1 in both", 2)
	s.flush(t)
	c.check(t, s, "two blocks", 2)

	require.Eventually(t, func() bool { return s.metric(t, "rubato_compactor_blocks_compacted_total") >= 2 },
		time.Minute, 100*time.Millisecond, "logs:\n%s", s.logs.String())
	require.Eventually(t, func() bool { return blocks() == 1 }, time.Minute, 100*time.Millisecond)
	time.Sleep(3 * time.Second) // complete_block_timeout: the ingester has dropped its copies
	c.check(t, s, "after compaction", 2)

	s.stop()
	require.NoError(t, os.RemoveAll(filepath.Join(s.dir, "wal")))
	s.start()
	c.check(t, s, "after restart, backend only", 2)
	require.Positive(t, s.metric(t, "rubato_querier_search_requests_total", `op="search"`, `outcome="ok"`))
}

// TestSearchEndToEnd runs the search lifecycle on the local backend.
func TestSearchEndToEnd(t *testing.T) {
	s := startServer(t, options{IdlePeriod: "1h", Ingester: "  complete_block_timeout: 2s", Extra: compactorConfig()})
	runSearchLifecycle(t, s, func() int {
		// Live blocks: a meta.json without meta.compacted.json.
		dirs, _ := filepath.Glob(filepath.Join(s.dir, "blocks", "single-tenant", "*", "meta.json"))
		n := 0
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(filepath.Dir(d), "meta.compacted.json")); os.IsNotExist(err) {
				n++
			}
		}
		return n
	})
}

// TestSearchReadsFlushedBlockOnce: once a flushed block is in the
// querier's blocklist, the search plan names it to the ingester, which
// leaves its local copy out (the block is read in the backend), and every
// trace is still found exactly once. Before the blocklist lists it, the
// ingester's copy answers (no blind window): the check holds at every
// step. No compaction can replace the one block.
func TestSearchReadsFlushedBlockOnce(t *testing.T) {
	s := startServer(t, options{IdlePeriod: "1h"})
	c := newSearchCorpus(30)
	pushOTLP(t, s.otlpGRPC(), c.request([]int{0, 1}, time.Now()))
	s.flush(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.check(t, s, "after flush", 1)
		if s.metric(t, "rubato_ingester_search_blocks_skipped_total") > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the ingester never left its copy of the listed block out; logs:\n%s", s.logs.String())
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSearchMinIO runs the search lifecycle on MinIO.
func TestSearchMinIO(t *testing.T) {
	srv := minio.Start(t)
	bucket := srv.NewBucket(t, "search")
	mc := srv.Client(t)
	s := startServer(t, options{IdlePeriod: "1h", Storage: s3Storage(srv, bucket), Ingester: "  complete_block_timeout: 2s", Extra: compactorConfig()})
	runSearchLifecycle(t, s, func() int {
		live, _, _ := bucketBlocks(t, mc, bucket)
		return live
	})
}
