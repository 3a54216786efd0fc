package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/model/combine"
	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// grafanaWalk reads a trace the way Grafana's Tempo plugin turns it into a
// data frame (pkg/tempo/trace_transform.go): it dereferences every
// ResourceSpans' resource (for its attributes), every ScopeSpans' scope
// (name, version) and every span's status (code, message) without a nil
// check. A nil there makes the plugin panic and fail the whole query, so
// this fails the test on each one, naming where it is.
func grafanaWalk(t testing.TB, td *tracev1.TracesData) {
	t.Helper()
	for i, rs := range td.GetResourceSpans() {
		require.NotNil(t, rs.Resource, "resourceSpans[%d].resource is nil: Grafana's trace view panics", i)
		for j, ss := range rs.ScopeSpans {
			require.NotNil(t, ss.Scope, "resourceSpans[%d].scopeSpans[%d].scope is nil: Grafana's trace view panics", i, j)
			for k, sp := range ss.Spans {
				require.NotNil(t, sp.Status, "resourceSpans[%d].scopeSpans[%d].spans[%d] (%q) status is nil: Grafana's trace view panics", i, j, k, sp.Name)
			}
		}
	}
}

// TestGrafanaTraceViewNeverSeesNil sends spans that carry no resource, no
// scope and no status through each receiver that can express that (raw
// OTLP protobuf and JSON, Zipkin JSON without tags) and reads them back in
// every shape a trace is answered in: v2 protobuf (Grafana's call), v1
// protobuf (its fallback) and v1 JSON. Every other receiver's output is
// walked the same way by server.traceByID, which every round-trip test
// uses.
func TestGrafanaTraceViewNeverSeesNil(t *testing.T) {
	s := startServer(t, options{IdlePeriod: "1h"})
	now := uint64(time.Now().UnixNano())

	bare := func(id byte) ([]byte, *coltracepb.ExportTraceServiceRequest) {
		tid := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, id}
		return tid, &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracev1.ResourceSpans{{
			// No Resource, no Scope, no Status: all optional in OTLP.
			ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{
				{TraceId: tid, SpanId: []byte{1, 1, 1, 1, 1, 1, 1, id}, Name: "root", StartTimeUnixNano: now, EndTimeUnixNano: now + 1000},
				{TraceId: tid, SpanId: []byte{2, 2, 2, 2, 2, 2, 2, id}, ParentSpanId: []byte{1, 1, 1, 1, 1, 1, 1, id}, Name: "child", StartTimeUnixNano: now, EndTimeUnixNano: now + 500},
			}}},
		}}}
	}

	var ids [][]byte
	// OTLP protobuf over gRPC.
	id, req := bare(1)
	pushOTLP(t, s.otlpGRPC(), req)
	ids = append(ids, id)
	// OTLP JSON over HTTP.
	id, req = bare(2)
	js := fmt.Sprintf(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"%x","spanId":"%x","name":"root","startTimeUnixNano":"%d","endTimeUnixNano":"%d"}]}]}]}`,
		id, req.ResourceSpans[0].ScopeSpans[0].Spans[0].SpanId, now, now+1000)
	resp, body := post(t, "http://"+s.otlpHTTP()+"/v1/traces", "application/json", []byte(js), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	ids = append(ids, id)
	// Zipkin JSON v2, as a service mesh sends it: no tags, so no status.
	zid := "0102030405060708090a0b0c0d0e0f03"
	zj := fmt.Sprintf(`[{"traceId":"%s","id":"0303030303030303","name":"get /","timestamp":%d,"duration":10,"kind":"SERVER","localEndpoint":{"serviceName":"mesh"}},`+
		`{"traceId":"%s","id":"0404040404040404","parentId":"0303030303030303","name":"upstream","timestamp":%d,"duration":5}]`, zid, now/1000, zid, now/1000)
	resp, body = post(t, fmt.Sprintf("http://127.0.0.1:%d/api/v2/spans", s.ports.Zipkin), "application/json", []byte(zj), nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	ids = append(ids, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 3})

	check := func(t *testing.T) {
		for _, id := range ids {
			hexID := fmt.Sprintf("%x", id)
			// v2 protobuf, what Grafana calls first.
			r, b := get(t, s.url("/api/v2/traces/"+hexID), "application/protobuf")
			require.Equal(t, http.StatusOK, r.StatusCode)
			var v2 rubatopb.TraceByIDResponse
			require.NoError(t, proto.Unmarshal(b, &v2))
			require.NotNil(t, v2.Trace)
			td := toTD(v2.Trace)
			require.Positive(t, countSpans(td), hexID)
			grafanaWalk(t, td)
			// v1 protobuf, its fallback (walked inside traceByID).
			require.Equal(t, countSpans(td), countSpans(s.traceByID(t, id, "")))
			// v1 JSON: every resource, scope and status present as objects.
			r, b = get(t, s.url("/api/traces/"+hexID), "")
			require.Equal(t, http.StatusOK, r.StatusCode)
			var v1 struct {
				Batches []struct {
					Resource   *json.RawMessage `json:"resource"`
					ScopeSpans []struct {
						Scope *json.RawMessage `json:"scope"`
						Spans []struct {
							Status *json.RawMessage `json:"status"`
						} `json:"spans"`
					} `json:"scopeSpans"`
				} `json:"batches"`
			}
			require.NoError(t, json.Unmarshal(b, &v1), string(b))
			require.NotEmpty(t, v1.Batches)
			for _, rs := range v1.Batches {
				require.NotNil(t, rs.Resource, "v1 JSON without resource: %s", b)
				for _, ss := range rs.ScopeSpans {
					require.NotNil(t, ss.Scope, "v1 JSON without scope: %s", b)
					for _, sp := range ss.Spans {
						require.NotNil(t, sp.Status, "v1 JSON without status: %s", b)
					}
				}
			}
			require.False(t, strings.Contains(string(b), `"resource":null`), string(b))
		}
	}
	t.Run("live", check)
	s.flush(t)
	t.Run("flushed", check)
	s.restart()
	t.Run("backend after restart", check)
}

// asAnswered returns what a trace sent as want reads back as: a copy with
// an empty Resource, Scope and Status wherever the client sent none, as
// every answer is filled (combine.FillRequired).
func asAnswered(want *tracev1.ResourceSpans) *tracev1.ResourceSpans {
	rs := proto.Clone(want).(*tracev1.ResourceSpans)
	combine.FillRequired(&tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{rs}})
	return rs
}
