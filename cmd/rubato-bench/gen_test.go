package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestRealisticProfile pins what the realistic profile promises: 8+
// services, ~12+ resource attributes with per-pod names, about 450 bytes
// of OTLP per span, 3 % error spans with exception events, and every
// ID-like value fresh in each request (two requests share no URL ID,
// statement literal or exception message).
func TestRealisticProfile(t *testing.T) {
	tp, err := newRealisticTemplate(50, 10)
	require.NoError(t, err)
	perSpan := float64(len(tp.bytes)) / float64(tp.spans)
	t.Logf("%.0f bytes of OTLP per span", perSpan)
	require.InDelta(t, 450, perSpan, 60, "bytes of OTLP per span")

	a, _ := tp.next(nil, nil, 0)
	b, _ := tp.next(nil, nil, 1000)
	var ra, rb coltracepb.ExportTraceServiceRequest
	require.NoError(t, proto.Unmarshal(a, &ra))
	require.NoError(t, proto.Unmarshal(bytes.Clone(b), &rb))

	services, pods := map[string]bool{}, map[string]bool{}
	var spans, errs, exceptions int
	valuesA := map[string]bool{}
	for _, rs := range ra.ResourceSpans {
		require.GreaterOrEqual(t, len(rs.Resource.Attributes), 12)
		for _, kv := range rs.Resource.Attributes {
			switch kv.Key {
			case "service.name":
				services[kv.Value.GetStringValue()] = true
			case "k8s.pod.name":
				pods[kv.Value.GetStringValue()] = true
			}
		}
		for _, sp := range rs.ScopeSpans[0].Spans {
			spans++
			if sp.Status.GetCode() == tracev1.Status_STATUS_CODE_ERROR {
				errs++
				require.Len(t, sp.Events, 1)
				require.Equal(t, "exception", sp.Events[0].Name)
				exceptions++
				for _, kv := range sp.Events[0].Attributes {
					if placeholderIn(kv) != "" {
						valuesA[kv.Value.GetStringValue()] = true
					}
				}
			}
			for _, kv := range sp.Attributes {
				if placeholderIn(kv) != "" {
					valuesA[kv.Value.GetStringValue()] = true
				}
			}
		}
	}
	require.GreaterOrEqual(t, len(services), 8)
	require.Equal(t, 2*len(services), len(pods), "two pods per service, each named")
	require.InDelta(t, 0.03, float64(errs)/float64(spans), 0.01)
	require.Equal(t, errs, exceptions)
	require.Greater(t, len(valuesA), spans, "request IDs, URL IDs and literals")
	for _, rs := range rb.ResourceSpans {
		for _, sp := range rs.ScopeSpans[0].Spans {
			for _, kv := range sp.Attributes {
				if placeholderIn(kv) != "" {
					require.False(t, valuesA[kv.Value.GetStringValue()], "%s repeats across requests: %s", kv.Key, kv.Value.GetStringValue())
				}
			}
		}
	}
}
