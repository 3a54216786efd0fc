package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// TestQueryPortProtocols checks, through the binary, that the HTTP port
// serves HTTP/1.1 (REST, ops endpoints, clear 501/404 answers) and gRPC
// StreamingQuerier over h2c on the same listener, as Grafana dials it; and
// that query_frontend.search limits from the config file are applied.
func TestQueryPortProtocols(t *testing.T) {
	s := startServer(t, options{Extra: "query_frontend:\n  search:\n    max_spans_per_span_set: 10\n"})

	resp, body := get(t, s.url("/api/echo"), "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 1, resp.ProtoMajor)
	require.Equal(t, "echo", string(body))
	resp, body = get(t, s.url("/api/status/buildinfo"), "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var bi map[string]string
	require.NoError(t, json.Unmarshal(body, &bi))
	require.NotEmpty(t, bi["version"])
	for _, p := range []string{"/ready", "/metrics"} {
		resp, _ = get(t, s.url(p), "")
		require.Equal(t, http.StatusOK, resp.StatusCode, p)
	}
	resp, body = get(t, s.url("/api/metrics/query_range?q=%7B%7D%7Crate()"), "application/json")
	require.Equal(t, http.StatusNotImplemented, resp.StatusCode)
	require.Contains(t, string(body), "TraceQL metrics are not implemented")
	resp, body = get(t, s.url("/api/no/such/thing"), "")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Contains(t, string(body), "no such endpoint: GET /api/no/such/thing")
	resp, body = get(t, s.url("/api/search?spss=11"), "application/json")
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(body), "spans per span set exceeds 10", "query_frontend.search from the file")

	for _, addr := range []string{fmt.Sprintf("127.0.0.1:%d", s.ports.HTTP), fmt.Sprintf("127.0.0.1:%d", s.ports.GRPC)} {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		c := rubatopb.NewStreamingQuerierClient(conn)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)

		mq, err := c.MetricsQueryRange(ctx, &rubatopb.QueryRangeRequest{Query: "{} | rate()"})
		require.NoError(t, err)
		_, err = mq.Recv()
		require.Equal(t, codes.Unimplemented, status.Code(err), addr)
		require.Contains(t, status.Convert(err).Message(), "TraceQL metrics are not implemented", addr)

		bad, err := c.Search(ctx, &rubatopb.SearchRequest{Query: "{}", SpansPerSpanSet: 11})
		require.NoError(t, err)
		_, err = bad.Recv()
		require.Equal(t, codes.InvalidArgument, status.Code(err), addr)

		// Grafana's streaming health check. Until a search engine is wired
		// the answer is Unimplemented naming search; once it is, messages
		// with metrics ending in a complete one.
		now := uint32(time.Now().Unix())
		st, err := c.Search(ctx, &rubatopb.SearchRequest{Query: "{}", Start: now - 900, End: now, Limit: 1})
		require.NoError(t, err)
		var last *rubatopb.SearchResponse
		for {
			m, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if status.Code(err) == codes.Unimplemented {
				require.Contains(t, status.Convert(err).Message(), "search is not implemented")
				break
			}
			require.NoError(t, err, addr)
			require.NotNil(t, m.Metrics)
			last = m
		}
		if last != nil {
			require.Equal(t, last.Metrics.TotalJobs, last.Metrics.CompletedJobs)
		}
		cancel()
		require.NoError(t, conn.Close())
	}
}

// TestTraceByIDWithQ: `q` on trace-by-ID keeps only the matching spans and
// says so (v2: PARTIAL with a message; v1: a header), through the binary.
func TestTraceByIDWithQ(t *testing.T) {
	s := startServer(t, options{})
	req, ids := makeRequest(1, 3) // spans carry span.i = 0, 1, 2
	pushOTLP(t, s.otlpGRPC(), req)
	id := fmt.Sprintf("%x", ids[0])
	q := "?q=" + url.QueryEscape(`{ span.i >= 1 }`)

	resp, body := get(t, s.url("/api/v2/traces/"+id+q), "application/protobuf")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var v2 rubatopb.TraceByIDResponse
	require.NoError(t, proto.Unmarshal(body, &v2))
	require.Equal(t, rubatopb.PartialStatus_PARTIAL, v2.Status)
	require.Contains(t, v2.Message, "2 of 3 spans match")
	require.Equal(t, 2, countSpans(&tracev1.TracesData{ResourceSpans: v2.Trace.ResourceSpans}))

	resp, body = get(t, s.url("/api/v2/traces/"+id+"?q="+url.QueryEscape("{}")), "application/protobuf")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, proto.Unmarshal(body, &v2))
	require.Equal(t, rubatopb.PartialStatus_COMPLETE, v2.Status, "nothing filtered out")
	require.Equal(t, 3, countSpans(&tracev1.TracesData{ResourceSpans: v2.Trace.ResourceSpans}))

	resp, body = get(t, s.url("/api/traces/"+id+q), "application/protobuf")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("X-Rubato-Partial"), "2 of 3 spans match")
	var v1 rubatopb.Trace
	require.NoError(t, proto.Unmarshal(body, &v1))
	require.Equal(t, 2, countSpans(&tracev1.TracesData{ResourceSpans: v1.ResourceSpans}))

	resp, body = get(t, s.url("/api/v2/traces/"+id+"?q="+url.QueryEscape("{ span.i = ")), "application/protobuf")
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(body), "parse error at line 1")
}
