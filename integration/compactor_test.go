package integration

import (
	"context"
	be "encoding/binary"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/integration/minio"
)

// compactionRequest builds spans spanNos of each trace; span n of a trace
// always has the same span ID, so sending it twice makes a replica copy.
func compactionRequest(ids [][]byte, spanNos []int, at time.Time) *coltracepb.ExportTraceServiceRequest {
	ss := &tracev1.ScopeSpans{Scope: &commonv1.InstrumentationScope{Name: "compaction-test"}}
	ts := uint64(at.UnixNano())
	for _, id := range ids {
		for _, n := range spanNos {
			ss.Spans = append(ss.Spans, &tracev1.Span{
				TraceId: id, SpanId: spanID(id, n), Name: "op", Kind: tracev1.Span_SPAN_KIND_SERVER,
				StartTimeUnixNano: ts, EndTimeUnixNano: ts + 1000,
			})
		}
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracev1.ResourceSpans{{
		Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{{Key: "service.name",
			Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: "compaction"}}}}},
		ScopeSpans: []*tracev1.ScopeSpans{ss},
	}}}
}

func spanID(traceID []byte, n int) []byte {
	return be.BigEndian.AppendUint64(nil, be.BigEndian.Uint64(traceID[8:])^uint64(n+1))
}

// bucketBlocks reads the bucket directly: live blocks (meta.json, no
// meta.compacted.json) and the end time of every block still present.
func bucketBlocks(t *testing.T, c *miniogo.Client, bucket string) (live int, ends []time.Time, hasIndex bool) {
	t.Helper()
	ctx := context.Background()
	files := map[string]map[string]bool{}
	for obj := range c.ListObjects(ctx, bucket, miniogo.ListObjectsOptions{Prefix: "single-tenant/", Recursive: true}) {
		require.NoError(t, obj.Err)
		parts := strings.Split(obj.Key, "/")
		if len(parts) == 2 && parts[1] == "index.json.gz" {
			hasIndex = true
		}
		if len(parts) != 3 {
			continue
		}
		if files[parts[1]] == nil {
			files[parts[1]] = map[string]bool{}
		}
		files[parts[1]][parts[2]] = true
	}
	for dir, f := range files {
		name := "meta.json"
		if f["meta.compacted.json"] {
			name = "meta.compacted.json"
		} else if f["meta.json"] {
			live++
		} else {
			continue
		}
		obj, err := c.GetObject(ctx, bucket, "single-tenant/"+dir+"/"+name, miniogo.GetObjectOptions{})
		require.NoError(t, err)
		data, err := io.ReadAll(obj)
		_ = obj.Close()
		if err != nil {
			continue // deleted meanwhile
		}
		var m struct {
			EndTime time.Time `json:"endTime"`
		}
		require.NoError(t, json.Unmarshal(data, &m))
		ends = append(ends, m.EndTime)
	}
	return live, ends, hasIndex
}

// TestMinIOCompaction runs the real binary on MinIO: three flushed blocks
// whose traces overlap (late spans and replica copies) are compacted into
// fewer blocks, every trace is still found with each span once, the tenant
// index is written, and a block past its retention is deleted.
func TestMinIOCompaction(t *testing.T) {
	srv := minio.Start(t)
	bucket := srv.NewBucket(t, "compact")
	mc := srv.Client(t)
	s := startServer(t, options{IdlePeriod: "100ms", Storage: s3Storage(srv, bucket),
		Ingester: "  complete_block_timeout: 2s",
		Extra: `compactor:
  compaction:
    compaction_window: 1h
    compaction_cycle: 300ms
    block_retention: 1h
    compacted_block_retention: 1s
`})
	ids := make([][]byte, 40)
	for i := range ids {
		ids[i] = randBytes(16)
	}
	// Block b holds spans b..b+2 of every trace: each span is in up to
	// three blocks, each trace in all three.
	for b := range 3 {
		pushOTLP(t, s.otlpGRPC(), compactionRequest(ids, []int{b, b + 1, b + 2}, time.Now()))
		time.Sleep(300 * time.Millisecond) // idle: into the head block
		s.flush(t)
		require.Eventually(t, func() bool { return s.metric(t, "rubato_ingester_blocks_flushed_total") >= float64(b+1) },
			30*time.Second, 50*time.Millisecond)
	}
	// The compactor may run between flushes: then it merges the first two
	// blocks into a level-1 block and leaves the third (level 0, recent
	// window) for later. Either way at least two inputs are compacted and
	// the block count drops.
	require.Eventually(t, func() bool {
		return s.metric(t, "rubato_compactor_blocks_compacted_total") >= 2
	}, time.Minute, 100*time.Millisecond, "logs:\n%s", s.logs.String())
	require.Eventually(t, func() bool {
		live, _, hasIndex := bucketBlocks(t, mc, bucket)
		return live < 3 && hasIndex
	}, time.Minute, 100*time.Millisecond)
	time.Sleep(3 * time.Second) // the ingester has dropped its copies: answers come from MinIO
	check := func(stage string) {
		for _, id := range ids {
			got := s.traceByID(t, id, "")
			require.NotNil(t, got, "%s: trace %x", stage, id)
			seen := map[string]bool{}
			for _, rs := range got.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					for _, sp := range ss.Spans {
						require.False(t, seen[string(sp.SpanId)], "%s: span twice", stage)
						seen[string(sp.SpanId)] = true
					}
				}
			}
			require.Len(t, seen, 5, "%s: trace %x", stage, id)
			for n := range 5 {
				require.True(t, seen[string(spanID(id, n))])
			}
		}
	}
	check("after compaction")
	require.Positive(t, s.metric(t, "rubato_compactor_spans_deduplicated_total"))
	require.Positive(t, s.metric(t, "rubato_blocklist_length", `component="compactor"`))

	// Old data: a block whose spans ended 3h ago is past the 1h retention.
	old := [][]byte{randBytes(16)}
	pushOTLP(t, s.otlpGRPC(), compactionRequest(old, []int{0}, time.Now().Add(-3*time.Hour)))
	time.Sleep(300 * time.Millisecond)
	s.flush(t)
	require.Eventually(t, func() bool { return s.metric(t, "rubato_compactor_retention_blocks_total") >= 1 },
		time.Minute, 100*time.Millisecond, "logs:\n%s", s.logs.String())
	require.Eventually(t, func() bool {
		_, ends, _ := bucketBlocks(t, mc, bucket)
		for _, e := range ends {
			if e.Before(time.Now().Add(-time.Hour)) {
				return false
			}
		}
		return true
	}, time.Minute, 100*time.Millisecond, "the expired block is deleted")
	require.Eventually(t, func() bool { return s.traceByID(t, old[0], "") == nil }, 30*time.Second, 100*time.Millisecond)
	check("after retention")

	// A restart (fresh process, fresh blocklists) still finds everything.
	s.restart()
	check("after restart")
}
