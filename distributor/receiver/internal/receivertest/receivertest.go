// Package receivertest has the recording Consumer and span comparison
// helpers the receiver tests share.
package receivertest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/tenant"
)

// Call is one Consume call.
type Call struct {
	Tenant string
	Req    *coltracepb.ExportTraceServiceRequest
}

// Recorder is a Consumer that keeps what it gets and answers Rejected/Msg/Err.
type Recorder struct {
	mu       sync.Mutex
	calls    []Call
	Rejected int64
	Msg      string
	Err      error
}

// Consume records the call.
func (r *Recorder) Consume(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (int64, string, error) {
	id, err := tenant.FromContext(ctx)
	if err != nil {
		return 0, "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, Call{Tenant: id, Req: req})
	return r.Rejected, r.Msg, r.Err
}

// Calls returns the calls so far.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Span is a received span with its resource and scope.
type Span struct {
	Tenant   string
	Resource map[string]any
	Scope    *commonpb.InstrumentationScope
	*tracepb.Span
}

// Spans flattens every call, keyed by hex span ID.
func (r *Recorder) Spans() map[string]Span {
	out := map[string]Span{}
	for _, c := range r.Calls() {
		for _, rs := range c.Req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					out[fmt.Sprintf("%x", sp.SpanId)] = Span{Tenant: c.Tenant, Resource: Attrs(rs.GetResource().GetAttributes()), Scope: ss.Scope, Span: sp}
				}
			}
		}
	}
	return out
}

// WaitSpans waits (up to 10s) until n spans were recorded.
func (r *Recorder) WaitSpans(t testing.TB, n int) map[string]Span {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := r.Spans()
		if len(s) >= n || time.Now().After(deadline) {
			require.Len(t, s, n)
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Attrs turns OTLP attributes into a map of Go values.
func Attrs(kvs []*commonpb.KeyValue) map[string]any {
	m := map[string]any{}
	for _, kv := range kvs {
		m[kv.Key] = Value(kv.Value)
	}
	return m
}

// Value turns an AnyValue into a Go value.
func Value(v *commonpb.AnyValue) any {
	switch v := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return v.StringValue
	case *commonpb.AnyValue_IntValue:
		return v.IntValue
	case *commonpb.AnyValue_BoolValue:
		return v.BoolValue
	case *commonpb.AnyValue_DoubleValue:
		return v.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return v.BytesValue
	case *commonpb.AnyValue_ArrayValue:
		var out []any
		for _, e := range v.ArrayValue.Values {
			out = append(out, Value(e))
		}
		return out
	}
	return nil
}

// SDKAttrs turns OTel SDK attributes into a map of Go values as OTLP carries
// them (or as strings, for Zipkin, when stringify is set).
func SDKAttrs(kvs []attribute.KeyValue, stringify bool) map[string]any {
	m := map[string]any{}
	for _, kv := range kvs {
		if stringify {
			m[string(kv.Key)] = kv.Value.Emit()
			continue
		}
		switch kv.Value.Type() {
		case attribute.STRINGSLICE:
			var out []any
			for _, s := range kv.Value.AsStringSlice() {
				out = append(out, s)
			}
			m[string(kv.Key)] = out
		default:
			m[string(kv.Key)] = kv.Value.AsInterface()
		}
	}
	return m
}

// SpanKind maps an SDK kind number to OTLP.
func SpanKind(k int) tracepb.Span_SpanKind { return tracepb.Span_SpanKind(k) }

// Keys returns the sorted keys of m.
func Keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// RequireSDKSpan compares an SDK span with what the receiver produced.
// stringify: attributes arrive as strings (Zipkin).
func RequireSDKSpan(t testing.TB, want sdktrace.ReadOnlySpan, got Span, stringify bool) {
	t.Helper()
	sc := want.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	require.Equal(t, tid[:], got.TraceId)
	require.Equal(t, sid[:], got.SpanId)
	if want.Parent().IsValid() {
		pid := want.Parent().SpanID()
		require.Equal(t, pid[:], got.ParentSpanId)
	} else {
		require.Empty(t, got.ParentSpanId)
	}
	if stringify { // zipkin-go lower-cases span names
		require.Equal(t, strings.ToLower(want.Name()), got.Name)
	} else {
		require.Equal(t, want.Name(), got.Name)
	}
	require.Equal(t, tracepb.Span_SpanKind(want.SpanKind()), got.Kind)
	if !stringify { // the OTel Zipkin exporter drops the trace state
		require.Equal(t, want.SpanContext().TraceState().String(), got.TraceState)
	}
	if stringify { // Zipkin keeps microseconds (zipkin-go rounds them)
		startUs := want.StartTime().Round(time.Microsecond).UnixMicro()
		durUs := max((want.EndTime().Sub(want.StartTime()) + 500*time.Nanosecond).Microseconds(), 1)
		require.Equal(t, uint64(startUs)*1000, got.StartTimeUnixNano)
		require.Equal(t, uint64(startUs+durUs)*1000, got.EndTimeUnixNano)
	} else {
		require.Equal(t, uint64(want.StartTime().UnixNano()), got.StartTimeUnixNano)
		require.Equal(t, uint64(want.EndTime().UnixNano()), got.EndTimeUnixNano)
	}
	require.Equal(t, SDKAttrs(want.Attributes(), stringify), Attrs(got.Attributes))
	require.Equal(t, SDKAttrs(want.Resource().Attributes(), stringify), got.Resource)
	require.Equal(t, want.InstrumentationScope().Name, got.Scope.GetName())
	require.Equal(t, want.InstrumentationScope().Version, got.Scope.GetVersion())
	wantCode := map[codes.Code]tracepb.Status_StatusCode{codes.Unset: tracepb.Status_STATUS_CODE_UNSET, codes.Ok: tracepb.Status_STATUS_CODE_OK, codes.Error: tracepb.Status_STATUS_CODE_ERROR}[want.Status().Code]
	require.Equal(t, wantCode, got.GetStatus().GetCode())
	require.Equal(t, want.Status().Description, got.GetStatus().GetMessage())
	require.Len(t, got.Events, len(want.Events()))
	for i, ev := range want.Events() {
		require.Equal(t, ev.Name, got.Events[i].Name)
		if stringify {
			require.Equal(t, uint64(ev.Time.Round(time.Microsecond).UnixMicro())*1000, got.Events[i].TimeUnixNano)
			require.Equal(t, SDKAttrs(ev.Attributes, true), stringAttrs(got.Events[i].Attributes))
		} else {
			require.Equal(t, uint64(ev.Time.UnixNano()), got.Events[i].TimeUnixNano)
			require.Equal(t, SDKAttrs(ev.Attributes, false), Attrs(got.Events[i].Attributes))
		}
	}
	if !stringify {
		require.Len(t, got.Links, len(want.Links()))
		for i, l := range want.Links() {
			ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
			require.Equal(t, ltid[:], got.Links[i].TraceId)
			require.Equal(t, lsid[:], got.Links[i].SpanId)
			require.Equal(t, SDKAttrs(l.Attributes, false), Attrs(got.Links[i].Attributes))
		}
	}
}

// CounterValue reads a counter.
func CounterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}

// stringAttrs renders attribute values as Emit would.
func stringAttrs(kvs []*commonpb.KeyValue) map[string]any {
	m := map[string]any{}
	for k, v := range Attrs(kvs) {
		m[k] = fmt.Sprint(v)
	}
	return m
}
