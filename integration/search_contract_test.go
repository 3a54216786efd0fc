package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang/protobuf/jsonpb" //nolint:staticcheck // Grafana's Tempo plugin decodes with this exact package.
	protov1 "github.com/golang/protobuf/proto"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// strictGet fetches path as Grafana does (Accept: application/json) and
// decodes it with golang/protobuf jsonpb, unknown fields rejected.
func strictGet(t *testing.T, s *server, path string, m protov1.Message) {
	t.Helper()
	resp, body := get(t, s.url(path), "application/json")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, body)
	m.Reset()
	require.NoError(t, (&jsonpb.Unmarshaler{AllowUnknownFields: false}).Unmarshal(strings.NewReader(string(body)), m), "%s: %s", path, body)
}

// TestSearchContractStrict runs Grafana's calls against the binary with
// real data and decodes every answer strictly against the pinned protos.
// It needs the search engine; while the querier has none (the API answers
// 501) it is skipped.
func TestSearchContractStrict(t *testing.T) {
	s := startServer(t, options{})
	if resp, body := get(t, s.url("/api/search"), "application/json"); resp.StatusCode == http.StatusNotImplemented {
		t.Skipf("no search engine wired: %s", body)
	}
	req, ids := makeRequest(3, 3) // service "crash", spans "op" with span.i = 0, 1, 2
	pushOTLP(t, s.otlpGRPC(), req)
	want := map[string]bool{}
	for _, id := range ids {
		want[fmt.Sprintf("%x", id)] = true
	}

	var sr rubatopb.SearchResponse
	q := "/api/search?q=" + url.QueryEscape(`{ resource.service.name = "crash" }`) + "&limit=20&spss=2"
	require.Eventually(t, func() bool { strictGet(t, s, q, &sr); return len(sr.Traces) == 3 }, 10*time.Second, 100*time.Millisecond)
	require.NotNil(t, sr.Metrics)
	for _, tr := range sr.Traces {
		require.True(t, want[strings.Repeat("0", 32-len(tr.TraceID))+tr.TraceID], "traceID %q is one we sent, in hex", tr.TraceID)
		require.NotEmpty(t, tr.SpanSets)
		for _, ss := range tr.SpanSets {
			require.LessOrEqual(t, len(ss.Spans), 2, "spss")
			require.Equal(t, uint32(3), ss.Matched)
			for _, sp := range ss.Spans {
				require.Len(t, sp.SpanID, 16, "span IDs are 16 hex digits")
			}
		}
	}
	// Legacy tag search (old Grafana) finds the same traces.
	strictGet(t, s, "/api/search?tags="+url.QueryEscape("service.name=crash")+"&minDuration=0ms", &sr)
	require.Len(t, sr.Traces, 3)

	var tags rubatopb.SearchTagsV2Response
	strictGet(t, s, "/api/v2/search/tags?limit=5000", &tags)
	scopes := map[string][]string{}
	for _, sc := range tags.Scopes {
		scopes[sc.Name] = sc.Tags
	}
	require.Contains(t, scopes["resource"], "service.name")
	require.Contains(t, scopes["span"], "i")
	require.Contains(t, scopes["intrinsic"], "rootServiceName")
	var tagsV1 rubatopb.SearchTagsResponse
	strictGet(t, s, "/api/search/tags", &tagsV1)
	require.Contains(t, tagsV1.TagNames, "service.name")

	var vals rubatopb.SearchTagValuesV2Response
	strictGet(t, s, "/api/v2/search/tag/resource.service.name/values?limit=5000", &vals)
	require.Contains(t, typedValues(vals.TagValues), "string:crash")
	strictGet(t, s, "/api/v2/search/tag/span.i/values?q="+url.QueryEscape(`{ resource.service.name = "crash" }`), &vals)
	require.Subset(t, typedValues(vals.TagValues), []string{"int:0", "int:1", "int:2"})
	var valsV1 rubatopb.SearchTagValuesResponse
	strictGet(t, s, "/api/search/tag/service.name/values", &valsV1)
	require.Contains(t, valsV1.TagValues, "crash")

	// The same search streamed at the HTTP port (h2c).
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", s.ports.HTTP), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	stream, err := rubatopb.NewStreamingQuerierClient(conn).Search(context.Background(), &rubatopb.SearchRequest{Query: `{ resource.service.name = "crash" }`, Limit: 20})
	require.NoError(t, err)
	got := map[string]bool{}
	var last *rubatopb.SearchResponse
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		require.NotNil(t, m.Metrics)
		for _, tr := range m.Traces {
			got[tr.TraceID] = true
		}
		last = m
	}
	require.NotNil(t, last)
	require.Len(t, got, 3)
	require.Equal(t, last.Metrics.TotalJobs, last.Metrics.CompletedJobs)
}

func typedValues(tvs []*rubatopb.TagValue) []string {
	out := make([]string, len(tvs))
	for i, tv := range tvs {
		out[i] = tv.Type + ":" + tv.Value
	}
	return out
}
