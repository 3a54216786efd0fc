package integration

import (
	"bytes"
	"crypto/rand"
	bin "encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	zkmodel "github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	zkhttp "github.com/openzipkin/zipkin-go/reporter/http"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	otelzipkin "go.opentelemetry.io/otel/exporters/zipkin"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// wantSpan is what a span sent through a receiver must read back as through
// GET /api/traces/{id}, derived from what the client sent by the conversion
// rules of CONTRACT.md §3 and pkg/model/RECEIVERS.md. Attribute values are Go
// values: string, int64, float64, bool, []byte, []any.
type wantSpan struct {
	traceID, spanID, parentID []byte
	name                      string
	kind                      tracev1.Span_SpanKind
	start, end                uint64
	traceState                string
	attrs, resource           map[string]any
	scopeName, scopeVersion   string
	status                    tracev1.Status_StatusCode
	statusMsg                 string
	events                    []wantEvent
	links                     []wantLink
}

type wantEvent struct {
	name    string
	time    uint64
	attrs   map[string]any
	dropped uint32
}

type wantLink struct {
	traceID, spanID []byte
	attrs           map[string]any
}

// gotSpan is a span read back with its resource and scope.
type gotSpan struct {
	span     *tracev1.Span
	resource map[string]any
	scope    *commonv1.InstrumentationScope
}

// spanKey identifies a span in a trace: its ID and kind, since a Zipkin
// client and server may share an ID.
func spanKey(id []byte, kind tracev1.Span_SpanKind) string {
	return fmt.Sprintf("%x/%d", id, kind)
}

func gotSpans(t testing.TB, td *tracev1.TracesData) map[string]gotSpan {
	t.Helper()
	out := map[string]gotSpan{}
	for _, rs := range td.GetResourceSpans() {
		res := goAttrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				k := spanKey(sp.SpanId, sp.Kind)
				_, dup := out[k]
				require.False(t, dup, "span %s returned twice", k)
				out[k] = gotSpan{span: sp, resource: res, scope: ss.Scope}
			}
		}
	}
	return out
}

// requireSpans checks that got holds exactly the wanted spans, every field.
func requireSpans(t testing.TB, want []wantSpan, got *tracev1.TracesData) {
	t.Helper()
	require.NotNil(t, got, "trace not found")
	spans := gotSpans(t, got)
	require.Len(t, spans, len(want), "span count")
	for _, w := range want {
		g, ok := spans[spanKey(w.spanID, w.kind)]
		require.True(t, ok, "span %x (kind %s) missing; have %v", w.spanID, w.kind, keysOf(spans))
		sp := g.span
		msg := fmt.Sprintf("span %x %q", w.spanID, w.name)
		require.Equal(t, w.traceID, sp.TraceId, msg)
		require.Equal(t, w.parentID, nilIfEmpty(sp.ParentSpanId), msg)
		require.Equal(t, w.name, sp.Name, msg)
		require.Equal(t, w.start, sp.StartTimeUnixNano, msg)
		require.Equal(t, w.end, sp.EndTimeUnixNano, msg)
		require.Equal(t, w.traceState, sp.TraceState, msg)
		require.Equal(t, orEmpty(w.attrs), goAttrs(sp.Attributes), msg+": attributes")
		require.Equal(t, orEmpty(w.resource), g.resource, msg+": resource")
		require.Equal(t, w.scopeName, g.scope.GetName(), msg+": scope")
		require.Equal(t, w.scopeVersion, g.scope.GetVersion(), msg+": scope version")
		require.Equal(t, w.status, sp.GetStatus().GetCode(), msg+": status")
		require.Equal(t, w.statusMsg, sp.GetStatus().GetMessage(), msg+": status message")
		require.Len(t, sp.Events, len(w.events), msg+": events")
		for i, e := range w.events {
			ge := sp.Events[i]
			require.Equal(t, e.name, ge.Name, msg)
			require.Equal(t, e.time, ge.TimeUnixNano, msg)
			require.Equal(t, orEmpty(e.attrs), goAttrs(ge.Attributes), msg+": event attributes")
			require.Equal(t, e.dropped, ge.DroppedAttributesCount, msg)
		}
		require.Len(t, sp.Links, len(w.links), msg+": links")
		for i, l := range w.links {
			gl := sp.Links[i]
			require.Equal(t, l.traceID, gl.TraceId, msg)
			require.Equal(t, l.spanID, gl.SpanId, msg)
			require.Equal(t, orEmpty(l.attrs), goAttrs(gl.Attributes), msg+": link attributes")
		}
	}
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func goAttrs(kvs []*commonv1.KeyValue) map[string]any {
	m := map[string]any{}
	for _, kv := range kvs {
		m[kv.Key] = goValue(kv.Value)
	}
	return m
}

func goValue(v *commonv1.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonv1.AnyValue_StringValue:
		return x.StringValue
	case *commonv1.AnyValue_IntValue:
		return x.IntValue
	case *commonv1.AnyValue_BoolValue:
		return x.BoolValue
	case *commonv1.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonv1.AnyValue_BytesValue:
		return x.BytesValue
	case *commonv1.AnyValue_ArrayValue:
		out := []any{}
		for _, e := range x.ArrayValue.Values {
			out = append(out, goValue(e))
		}
		return out
	case *commonv1.AnyValue_KvlistValue:
		return goAttrs(x.KvlistValue.Values)
	}
	return nil
}

// be64 and be128 are IDs as OTLP carries them (big-endian bytes).
func be64(v uint64) []byte { return bin.BigEndian.AppendUint64(nil, v) }

func be128(hi, lo uint64) []byte { return bin.BigEndian.AppendUint64(be64(hi), lo) }

func randUint64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return bin.BigEndian.Uint64(b[:]) | 1 // never zero
}

// waitTrace polls until the trace has n spans (for fire-and-forget UDP).
func (s *server) waitTrace(t testing.TB, id []byte, n int) *tracev1.TracesData {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		td := s.traceByID(t, id, "")
		if countSpans(td) >= n || time.Now().After(deadline) {
			require.Equal(t, n, countSpans(td), "trace %x: spans after waiting", id)
			return td
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkTraces compares every trace right away and again once the ingester
// flushed them to the backend, where they are read from blocks.
func checkTraces(t testing.TB, s *server, want map[string][]wantSpan) {
	t.Helper()
	for id, spans := range want {
		tid, _ := hex.DecodeString(id)
		requireSpans(t, spans, s.waitTrace(t, tid, len(spans)))
	}
	s.flush(t)
	for id, spans := range want {
		tid, _ := hex.DecodeString(id)
		requireSpans(t, spans, s.traceByID(t, tid, ""))
	}
}

// statusDoer records the answer to every request zipkin-go's reporter makes.
type statusDoer struct {
	mu    sync.Mutex
	codes []int
}

func (d *statusDoer) Do(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultClient.Do(req)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.codes = append(d.codes, -1)
		return nil, err
	}
	d.codes = append(d.codes, resp.StatusCode)
	return resp, nil
}

func (d *statusDoer) requireAll(t testing.TB, code int) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	require.NotEmpty(t, d.codes, "no request sent")
	for _, c := range d.codes {
		require.Equal(t, code, c)
	}
}

// zipkinCase is one span as zipkin-go sends it and as it must read back.
type zipkinCase struct {
	sent zkmodel.SpanModel
	want wantSpan
}

// zipkinTrace builds one trace exercising every Zipkin rule: self-parented
// root, kinds from the field and from the span.kind tag, both endpoints
// (IPv4 and IPv6, a tag overriding peer.service), error tags, otel.status_*,
// trace state, scope and the older library tags, resource-namespace tags,
// plain and attribute-carrying annotations.
func zipkinTrace(tid zkmodel.TraceID) []zipkinCase {
	base := time.Now().Truncate(time.Microsecond).Add(-time.Minute)
	us := func(d time.Duration) uint64 { return uint64(base.Add(d).UnixMicro()) * 1000 }
	trace := be128(tid.High, tid.Low)
	root, cl, prod, cons, intl, unsp := zkmodel.ID(randUint64()), zkmodel.ID(randUint64()), zkmodel.ID(randUint64()),
		zkmodel.ID(randUint64()), zkmodel.ID(randUint64()), zkmodel.ID(randUint64())
	ctx := func(id, parent zkmodel.ID) zkmodel.SpanContext {
		return zkmodel.SpanContext{TraceID: tid, ID: id, ParentID: &parent}
	}
	frontend := map[string]any{"service.name": "frontend"}
	worker := map[string]any{"service.name": "worker"}
	return []zipkinCase{{
		sent: zkmodel.SpanModel{
			SpanContext: ctx(root, root), Name: "GET /Checkout", Kind: zkmodel.Server, Timestamp: base, Duration: 5 * time.Millisecond,
			LocalEndpoint: &zkmodel.Endpoint{ServiceName: "frontend", IPv4: net.IPv4(10, 0, 0, 1), Port: 8080},
			Annotations:   []zkmodel.Annotation{{Timestamp: base.Add(100 * time.Microsecond), Value: "wire.recv"}},
			Tags: map[string]string{"http.method": "GET", "http.status_code": "200", "k8s.pod.name": "frontend-1",
				"w3c.tracestate": "vendor=v1", "otel.scope.name": "zk/http", "otel.scope.version": "0.4.3"},
		},
		want: wantSpan{traceID: trace, spanID: be64(uint64(root)), name: "GET /Checkout", kind: tracev1.Span_SPAN_KIND_SERVER,
			start: us(0), end: us(5 * time.Millisecond), traceState: "vendor=v1", scopeName: "zk/http", scopeVersion: "0.4.3",
			resource: map[string]any{"service.name": "frontend", "k8s.pod.name": "frontend-1"},
			attrs:    map[string]any{"http.method": "GET", "http.status_code": "200", "net.host.ip": "10.0.0.1", "net.host.port": int64(8080)},
			events:   []wantEvent{{name: "wire.recv", time: us(100 * time.Microsecond)}}},
	}, {
		sent: zkmodel.SpanModel{
			SpanContext: ctx(cl, root), Name: "charge", Kind: zkmodel.Client, Timestamp: base.Add(time.Millisecond), Duration: 2 * time.Millisecond,
			LocalEndpoint:  &zkmodel.Endpoint{ServiceName: "frontend", IPv6: net.ParseIP("2001:db8::5")},
			RemoteEndpoint: &zkmodel.Endpoint{ServiceName: "payments", IPv4: net.IPv4(10, 0, 0, 9), Port: 9000},
			Annotations: []zkmodel.Annotation{
				{Timestamp: base.Add(1200 * time.Microsecond), Value: "retry"},
				{Timestamp: base.Add(1300 * time.Microsecond), Value: `db.retry|{"attempt":2,"ok":true,"ratio":0.5,"who":"x"}|1`},
			},
			Tags: map[string]string{"error": "true", "peer.service": "payments-main"},
		},
		want: wantSpan{traceID: trace, spanID: be64(uint64(cl)), parentID: be64(uint64(root)), name: "charge", kind: tracev1.Span_SPAN_KIND_CLIENT,
			start: us(time.Millisecond), end: us(3 * time.Millisecond), resource: frontend, status: tracev1.Status_STATUS_CODE_ERROR,
			attrs: map[string]any{"peer.service": "payments-main", "net.host.ip": "2001:db8::5", "net.peer.ip": "10.0.0.9", "net.peer.port": int64(9000)},
			events: []wantEvent{{name: "retry", time: us(1200 * time.Microsecond)}, {name: "db.retry", time: us(1300 * time.Microsecond),
				attrs: map[string]any{"attempt": int64(2), "ok": true, "ratio": 0.5, "who": "x"}, dropped: 1}}},
	}, {
		sent: zkmodel.SpanModel{
			SpanContext: ctx(prod, root), Name: "enqueue", Kind: zkmodel.Producer, Timestamp: base.Add(3 * time.Millisecond), Duration: 7 * time.Microsecond,
			LocalEndpoint: &zkmodel.Endpoint{ServiceName: "frontend"}, RemoteEndpoint: &zkmodel.Endpoint{ServiceName: "queue"},
			Tags: map[string]string{"error": "queue full"},
		},
		want: wantSpan{traceID: trace, spanID: be64(uint64(prod)), parentID: be64(uint64(root)), name: "enqueue", kind: tracev1.Span_SPAN_KIND_PRODUCER,
			start: us(3 * time.Millisecond), end: us(3*time.Millisecond + 7*time.Microsecond), resource: frontend,
			status: tracev1.Status_STATUS_CODE_ERROR, attrs: map[string]any{"error": "queue full", "peer.service": "queue"}},
	}, {
		sent: zkmodel.SpanModel{
			SpanContext: ctx(cons, prod), Name: "dequeue", Kind: zkmodel.Consumer, Timestamp: base.Add(4 * time.Millisecond), Duration: time.Millisecond,
			LocalEndpoint: &zkmodel.Endpoint{ServiceName: "worker"}, Tags: map[string]string{"otel.status_code": "OK"},
		},
		want: wantSpan{traceID: trace, spanID: be64(uint64(cons)), parentID: be64(uint64(prod)), name: "dequeue", kind: tracev1.Span_SPAN_KIND_CONSUMER,
			start: us(4 * time.Millisecond), end: us(5 * time.Millisecond), resource: worker, status: tracev1.Status_STATUS_CODE_OK},
	}, {
		sent: zkmodel.SpanModel{
			SpanContext: ctx(intl, cons), Name: "process", Timestamp: base.Add(4 * time.Millisecond), Duration: 10 * time.Microsecond,
			LocalEndpoint: &zkmodel.Endpoint{ServiceName: "worker"},
			Tags:          map[string]string{"span.kind": "internal", "otel.status_code": "ERROR", "otel.status_description": "boom", "job": "7"},
		},
		want: wantSpan{traceID: trace, spanID: be64(uint64(intl)), parentID: be64(uint64(cons)), name: "process", kind: tracev1.Span_SPAN_KIND_INTERNAL,
			start: us(4 * time.Millisecond), end: us(4*time.Millisecond + 10*time.Microsecond), resource: worker,
			status: tracev1.Status_STATUS_CODE_ERROR, statusMsg: "boom", attrs: map[string]any{"job": "7"}},
	}, {
		sent: zkmodel.SpanModel{
			SpanContext: ctx(unsp, cons), Name: "legacy", Timestamp: base.Add(4 * time.Millisecond), Duration: 3 * time.Microsecond,
			LocalEndpoint: &zkmodel.Endpoint{ServiceName: "worker"},
			Tags:          map[string]string{"otel.library.name": "old-lib", "otel.library.version": "0.1"},
		},
		want: wantSpan{traceID: trace, spanID: be64(uint64(unsp)), parentID: be64(uint64(cons)), name: "legacy",
			start: us(4 * time.Millisecond), end: us(4*time.Millisecond + 3*time.Microsecond), resource: worker,
			scopeName: "old-lib", scopeVersion: "0.1"},
	}}
}

// TestZipkinGoReporterRoundTrip sends through openzipkin/zipkin-go's HTTP
// reporter in both of its encodings, a 64-bit and a 128-bit trace each, and
// reads every span back field by field, live and from the backend.
func TestZipkinGoReporterRoundTrip(t *testing.T) {
	s := startServer(t, options{IdlePeriod: "1h"})
	url := fmt.Sprintf("http://127.0.0.1:%d/api/v2/spans", s.ports.Zipkin)
	want := map[string][]wantSpan{}
	for _, enc := range []struct {
		name string
		opts []zkhttp.ReporterOption
		json bool
	}{
		{name: "json", json: true},
		{name: "proto", opts: []zkhttp.ReporterOption{zkhttp.Serializer(zipkin_proto3.SpanSerializer{})}},
	} {
		doer := &statusDoer{}
		var logs bytes.Buffer
		rep := zkhttp.NewReporter(url, append(enc.opts, zkhttp.Client(doer), zkhttp.BatchSize(4),
			zkhttp.Logger(log.New(&logs, "", 0)))...)
		for _, tid := range []zkmodel.TraceID{{Low: randUint64()}, {High: randUint64(), Low: randUint64()}} {
			var spans []wantSpan
			for _, c := range zipkinTrace(tid) {
				rep.Send(c.sent)
				if enc.json { // zipkin-go's JSON encoder lower-cases names
					c.want.name = strings.ToLower(c.want.name)
				}
				spans = append(spans, c.want)
			}
			want[hex.EncodeToString(be128(tid.High, tid.Low))] = spans
		}
		require.NoError(t, rep.Close())
		require.Empty(t, logs.String(), "%s reporter logged errors", enc.name)
		doer.requireAll(t, http.StatusAccepted)
	}
	checkTraces(t, s, want)
	require.Equal(t, 24.0, s.metric(t, "rubato_receiver_accepted_spans_total", `protocol="zipkin"`))
}

// TestZipkinSharedSpanRoundTrip sends a client span and the server span
// that shares its ID (B3 "join"), as Brave and zipkin-go do: both halves
// must be stored and read back (Tempo's combiner keys spans by ID and kind).
func TestZipkinSharedSpanRoundTrip(t *testing.T) {
	s := startServer(t, options{IdlePeriod: "1h"})
	tid := zkmodel.TraceID{Low: randUint64()}
	id := zkmodel.ID(randUint64())
	base := time.Now().Truncate(time.Microsecond).Add(-time.Minute)
	doer := &statusDoer{}
	rep := zkhttp.NewReporter(fmt.Sprintf("http://127.0.0.1:%d/api/v2/spans", s.ports.Zipkin), zkhttp.Client(doer))
	rep.Send(zkmodel.SpanModel{SpanContext: zkmodel.SpanContext{TraceID: tid, ID: id}, Name: "get /a", Kind: zkmodel.Client,
		Timestamp: base, Duration: 4 * time.Millisecond, LocalEndpoint: &zkmodel.Endpoint{ServiceName: "web"}})
	rep.Send(zkmodel.SpanModel{SpanContext: zkmodel.SpanContext{TraceID: tid, ID: id}, Name: "get /a", Kind: zkmodel.Server, Shared: true,
		Timestamp: base.Add(time.Millisecond), Duration: 2 * time.Millisecond, LocalEndpoint: &zkmodel.Endpoint{ServiceName: "api"}})
	require.NoError(t, rep.Close())
	doer.requireAll(t, http.StatusAccepted)
	us := func(d time.Duration) uint64 { return uint64(base.Add(d).UnixMicro()) * 1000 }
	trace := be128(0, tid.Low)
	checkTraces(t, s, map[string][]wantSpan{hex.EncodeToString(trace): {
		{traceID: trace, spanID: be64(uint64(id)), name: "get /a", kind: tracev1.Span_SPAN_KIND_CLIENT, start: us(0), end: us(4 * time.Millisecond),
			resource: map[string]any{"service.name": "web"}},
		{traceID: trace, spanID: be64(uint64(id)), name: "get /a", kind: tracev1.Span_SPAN_KIND_SERVER, start: us(time.Millisecond), end: us(3 * time.Millisecond),
			resource: map[string]any{"service.name": "api"}},
	}})
}

// zipkinTagValue is how the OpenTelemetry Zipkin exporter writes an
// attribute as a tag.
func zipkinTagValue(v attribute.Value) string {
	switch v.Type() {
	case attribute.STRINGSLICE, attribute.INT64SLICE, attribute.FLOAT64SLICE, attribute.BOOLSLICE:
		b, _ := json.Marshal(v.AsInterface())
		return string(b)
	}
	return v.Emit()
}

// zipkinMicros is a time as the exporter's zipkin-go encoder rounds it.
func zipkinMicros(ts time.Time) uint64 { return uint64(ts.Round(time.Microsecond).UnixMicro()) * 1000 }

// otelZipkinWant derives what an SDK span exported as Zipkin reads back as:
// tags are strings, resource attributes come back from their namespaces,
// INTERNAL has no Zipkin kind, links and trace state are not carried, event
// attributes return typed from the exporter's JSON.
func otelZipkinWant(s sdktrace.ReadOnlySpan) wantSpan {
	tid, sid := s.SpanContext().TraceID(), s.SpanContext().SpanID()
	w := wantSpan{traceID: tid[:], spanID: sid[:], name: strings.ToLower(s.Name()),
		scopeName: s.InstrumentationScope().Name, scopeVersion: s.InstrumentationScope().Version,
		attrs: map[string]any{}, resource: map[string]any{}}
	if s.Parent().IsValid() {
		p := s.Parent().SpanID()
		w.parentID = p[:]
	}
	if k := s.SpanKind(); k != trace.SpanKindInternal {
		w.kind = tracev1.Span_SpanKind(k)
	}
	w.start = zipkinMicros(s.StartTime())
	d := s.EndTime().Sub(s.StartTime())
	if d < time.Microsecond {
		d = time.Microsecond
	}
	w.end = w.start + uint64((d+500*time.Nanosecond)/time.Microsecond)*1000
	for _, kv := range s.Attributes() {
		w.attrs[string(kv.Key)] = zipkinTagValue(kv.Value)
	}
	for _, kv := range s.Resource().Attributes() {
		w.resource[string(kv.Key)] = zipkinTagValue(kv.Value)
	}
	switch s.Status().Code {
	case codes.Ok:
		w.status = tracev1.Status_STATUS_CODE_OK
	case codes.Error:
		w.status, w.statusMsg = tracev1.Status_STATUS_CODE_ERROR, s.Status().Description
	}
	for _, e := range s.Events() {
		we := wantEvent{name: e.Name, time: zipkinMicros(e.Time), attrs: map[string]any{}}
		for _, kv := range e.Attributes {
			we.attrs[string(kv.Key)] = kv.Value.AsInterface()
		}
		w.events = append(w.events, we)
	}
	return w
}

// TestOTelZipkinExporterRoundTrip sends SDK spans of every kind, with slice
// attributes, events, links, trace state and error/ok statuses through
// go.opentelemetry.io/otel/exporters/zipkin.
func TestOTelZipkinExporterRoundTrip(t *testing.T) {
	s := startServer(t, options{IdlePeriod: "1h"})
	exp, err := otelzipkin.New(fmt.Sprintf("http://127.0.0.1:%d/api/v2/spans", s.ports.Zipkin))
	require.NoError(t, err)
	want := map[string][]wantSpan{}
	n := 0
	for id, spans := range emitTraces(t, exp, "checkout-zipkin", 5).byTrace() {
		for _, sp := range spans {
			want[hex.EncodeToString(id[:])] = append(want[hex.EncodeToString(id[:])], otelZipkinWant(sp))
			n++
		}
	}
	require.Len(t, want, 5)
	checkTraces(t, s, want)
	require.Equal(t, float64(n), s.metric(t, "rubato_receiver_accepted_spans_total", `protocol="zipkin"`))
}
