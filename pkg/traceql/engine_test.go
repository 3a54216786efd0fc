package traceql

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

func kvS(k, v string) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: v}}}
}

func kvI(k string, v int64) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: v}}}
}

func kvF(k string, v float64) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_DoubleValue{DoubleValue: v}}}
}

func kvB(k string, v bool) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_BoolValue{BoolValue: v}}}
}

func kvArr(k string, vs ...string) *commonv1.KeyValue {
	arr := &commonv1.ArrayValue{}
	for _, v := range vs {
		arr.Values = append(arr.Values, &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: v}})
	}
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_ArrayValue{ArrayValue: arr}}}
}

func sid(n byte) []byte { return []byte{0, 0, 0, 0, 0, 0, 0, n} }

var testTraceID = []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd}

const t0 = uint64(1_700_000_000_000_000_000)

func mkSpan(id, parent byte, name string, kind tracev1.Span_SpanKind, st *tracev1.Status, startOff, dur time.Duration, attrs ...*commonv1.KeyValue) *tracev1.Span {
	sp := &tracev1.Span{
		TraceId: testTraceID, SpanId: sid(id), Name: name, Kind: kind, Status: st,
		StartTimeUnixNano: t0 + uint64(startOff), EndTimeUnixNano: t0 + uint64(startOff+dur),
		Attributes: attrs,
	}
	if parent != 0 {
		sp.ParentSpanId = sid(parent)
	}
	return sp
}

// testTrace is:
//
//	GET /api (frontend, server, no status, 100ms)
//	├── SELECT (frontend, client, error "timeout", 30ms, event exception)
//	└── POST /cart (cart, server, ok, 50ms)
//	    ├── publish (cart, producer, 5ms, link)
//	    └── consume (cart, consumer, 1ms)
func testTrace() *tracev1.TracesData {
	sel := mkSpan(2, 1, "SELECT", tracev1.Span_SPAN_KIND_CLIENT,
		&tracev1.Status{Code: tracev1.Status_STATUS_CODE_ERROR, Message: "timeout"}, 10*time.Millisecond, 30*time.Millisecond,
		kvS("db.system", "postgresql"), kvI("http.status_code", 500), kvArr("tags", "a", "b"))
	sel.Events = []*tracev1.Span_Event{
		{Name: "log", TimeUnixNano: t0 + uint64(11*time.Millisecond)},
		{Name: "exception", TimeUnixNano: t0 + uint64(15*time.Millisecond), Attributes: []*commonv1.KeyValue{kvS("exception.message", "boom")}},
	}
	pub := mkSpan(4, 3, "publish", tracev1.Span_SPAN_KIND_PRODUCER, &tracev1.Status{}, 50*time.Millisecond, 5*time.Millisecond, kvS("shared", "span"))
	pub.Links = []*tracev1.Span_Link{{TraceId: testTraceID, SpanId: sid(9), Attributes: []*commonv1.KeyValue{kvS("ref", "child_of")}}}
	return &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{
		{
			Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{kvS("service.name", "frontend"), kvS("deployment.environment", "production")}},
			ScopeSpans: []*tracev1.ScopeSpans{{
				Scope: &commonv1.InstrumentationScope{Name: "otel-go", Version: "1.0.0"},
				Spans: []*tracev1.Span{
					mkSpan(1, 0, "GET /api", tracev1.Span_SPAN_KIND_SERVER, nil, 0, 100*time.Millisecond,
						kvS("http.method", "GET"), kvI("http.status_code", 200), kvB("cache.hit", true)),
					sel,
				},
			}},
		},
		{
			Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{kvS("service.name", "cart"), kvS("shared", "res")}},
			ScopeSpans: []*tracev1.ScopeSpans{{
				Scope: &commonv1.InstrumentationScope{Name: "grpc", Attributes: []*commonv1.KeyValue{kvS("language", "go")}},
				Spans: []*tracev1.Span{
					mkSpan(3, 1, "POST /cart", tracev1.Span_SPAN_KIND_SERVER, &tracev1.Status{Code: tracev1.Status_STATUS_CODE_OK}, 40*time.Millisecond, 50*time.Millisecond,
						kvS("http.method", "POST"), kvS("http.status_code", "500"), kvF("ratio", 1.5)),
					pub,
					mkSpan(5, 3, "consume", tracev1.Span_SPAN_KIND_CONSUMER, nil, 60*time.Millisecond, time.Millisecond),
				},
			}},
		},
	}}
}

// names renders spansets as "name,name|name" with spans sorted by name
// within a spanset.
func names(sss []Spanset) string {
	var parts []string
	for _, ss := range sss {
		var ns []string
		for _, s := range ss.Spans {
			ns = append(ns, s.Span.Name)
		}
		sort.Strings(ns)
		parts = append(parts, strings.Join(ns, ","))
	}
	return strings.Join(parts, "|")
}

func kvString(kvs []*commonv1.KeyValue) string {
	var parts []string
	for _, kv := range kvs {
		var v string
		switch x := kv.Value.Value.(type) {
		case *commonv1.AnyValue_StringValue:
			v = fmt.Sprintf("%q", x.StringValue)
		case *commonv1.AnyValue_IntValue:
			v = fmt.Sprint(x.IntValue)
		case *commonv1.AnyValue_DoubleValue:
			v = fmt.Sprint(x.DoubleValue)
		case *commonv1.AnyValue_BoolValue:
			v = fmt.Sprint(x.BoolValue)
		case *commonv1.AnyValue_ArrayValue:
			v = fmt.Sprintf("array(%d)", len(x.ArrayValue.Values))
		}
		parts = append(parts, kv.Key+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func TestEval(t *testing.T) {
	td := testTrace()
	all := "GET /api,POST /cart,SELECT,consume,publish"
	tests := []struct {
		q    string
		want string // names(); "" = no match
	}{
		{`{}`, all},
		{`{ true }`, all},
		{`{ false }`, ""},
		// != on a missing attribute does not match; types must match
		{`{ .http.status_code = 500 }`, "SELECT"},
		{`{ span.http.status_code != 200 }`, "SELECT"},
		{`{ span.http.status_code != "200" }`, "POST /cart"},
		{`{ .http.status_code >= "4" }`, "POST /cart"},
		{`{ span.http.status_code < 300 }`, "GET /api"},
		{`{ span.ratio > 1 }`, "POST /cart"},
		{`{ span.ratio = 1.5 }`, "POST /cart"},
		{`{ span.http.status_code = 500.0 }`, "SELECT"},
		{`{ span.http.status_code = 500 || span.http.status_code = "500" }`, "POST /cart,SELECT"},
		// intrinsics
		{`{ status = error }`, "SELECT"},
		{`{ span:status != error }`, "GET /api,POST /cart,consume,publish"},
		{`{ status = unset }`, "GET /api,consume,publish"},
		{`{ status = ok }`, "POST /cart"},
		{`{ statusMessage = "timeout" }`, "SELECT"},
		{`{ kind = server }`, "GET /api,POST /cart"},
		{`{ span:kind = producer || kind = consumer }`, "consume,publish"},
		{`{ duration > 20ms && duration < 60ms }`, "POST /cart,SELECT"},
		{`{ span:duration >= 100ms }`, "GET /api"},
		{`{ duration = 1000000 }`, "consume"},
		{`{ name = "GET /api" }`, "GET /api"},
		{`{ span:name != "GET /api" }`, "POST /cart,SELECT,consume,publish"},
		{`{ rootName = "GET /api" }`, all},
		{`{ trace:rootName = "nope" }`, ""},
		{`{ rootServiceName = "frontend" }`, all},
		{`{ rootService = "frontend" && trace:rootService = "frontend" }`, all},
		{`{ traceDuration = 100ms }`, all},
		{`{ trace:duration > 100ms }`, ""},
		{`{ trace:id = "abcd" }`, all},
		{`{ trace:id = "000000000000000000000000000ABCD" }`, all},
		{`{ trace:id = "abce" }`, ""},
		{`{ span:id = "0000000000000002" }`, "SELECT"},
		{`{ span:id = "2" }`, "SELECT"},
		{`{ span:parentID = "0000000000000003" }`, "consume,publish"},
		{`{ span:childCount = 2 }`, "GET /api,POST /cart"},
		{`{ childCount = 0 }`, "SELECT,consume,publish"},
		{`{ instrumentation:name = "grpc" }`, "POST /cart,consume,publish"},
		{`{ instrumentation:version = "1.0.0" }`, "GET /api,SELECT"},
		{`{ instrumentation.language = "go" }`, "POST /cart,consume,publish"},
		// regex: RE2, fully anchored
		{`{ name =~ "GET" }`, ""},
		{`{ name =~ "GET.*" }`, "GET /api"},
		{`{ name !~ ".*S.*" }`, "GET /api,consume,publish"},
		{`{ resource.service.name =~ "front|cart" }`, "POST /cart,consume,publish"},
		{`{ resource.service.name =~ "frontend|cart" }`, all},
		{`{ span.http.status_code =~ "5.*" }`, "POST /cart"},
		// existence
		{`{ span.db.system != nil }`, "SELECT"},
		{`{ span.db.system = nil }`, "GET /api,POST /cart,consume,publish"},
		{`{ nil != span.db.system }`, "SELECT"},
		{`{ resource.deployment.environment != nil }`, "GET /api,SELECT"},
		// unscoped: span first, then resource
		{`{ .shared = "span" }`, "publish"},
		{`{ .shared = "res" }`, "POST /cart,consume"},
		{`{ resource.shared = "res" }`, "POST /cart,consume,publish"},
		{`{ span.shared = "res" }`, ""},
		{`{ .service.name = "cart" }`, "POST /cart,consume,publish"},
		// arrays
		{`{ span.tags = "a" }`, "SELECT"},
		{`{ span.tags != "a" }`, ""},
		{`{ span.tags != "c" }`, "SELECT"},
		{`{ span.tags =~ "b" }`, "SELECT"},
		{`{ span.tags !~ "a|b" }`, ""},
		// events and links
		{`{ event.exception.message = "boom" }`, "SELECT"},
		{`{ event:name = "exception" }`, "SELECT"},
		{`{ event:name = "log" && event.exception.message = "boom" }`, "SELECT"},
		{`{ event:timeSinceStart > 4ms }`, "SELECT"},
		{`{ event:timeSinceStart > 6ms }`, ""},
		{`{ link.ref = "child_of" }`, "publish"},
		{`{ link:spanID = "0000000000000009" }`, "publish"},
		{`{ link:traceID = "abcd" }`, "publish"},
		// booleans
		{`{ span.cache.hit }`, "GET /api"},
		{`{ .cache.hit = true }`, "GET /api"},
		{`{ .cache.hit || name = "publish" }`, "GET /api,publish"},
		{`{ !span.cache.hit }`, ""},
		{`{ !(name = "publish") && kind = producer }`, ""},
		{`{ !(kind = server) }`, "SELECT,consume,publish"},
		// && and || share precedence, left to right
		{`{ name = "publish" || name = "consume" && kind = consumer }`, "consume"},
		{`{ name = "publish" || (name = "consume" && kind = consumer) }`, "consume,publish"},
		// arithmetic
		{`{ span.http.status_code * 2 = 1000 }`, "SELECT"},
		{`{ span.http.status_code / 3 = 166 }`, "SELECT"},
		{`{ span.http.status_code % 7 = 3 }`, "SELECT"},
		{`{ duration + 1ms > 50ms }`, "GET /api,POST /cart"},
		{`{ span.ratio * 2 = 3 }`, "POST /cart"},
		{`{ -span.ratio < -1 }`, "POST /cart"},
		{`{ 2 ^ 3 = 8 && name = "SELECT" }`, "SELECT"},
		{`{ span.http.status_code / 0 = 1 }`, ""},
		// spanset operators
		{`{ status = error } && { kind = producer }`, "SELECT,publish"},
		{`{ status = error } && { name = "nope" }`, ""},
		{`{ status = error } || { name = "nope" }`, "SELECT"},
		{`{ status = error } || { kind = producer }`, "SELECT,publish"},
		{`{ name = "nope" } || { name = "nope2" }`, ""},
		{`{ kind = server } && { kind = server }`, "GET /api,POST /cart"},
		// structural: results come from the right side
		{`{ name = "GET /api" } > { }`, "POST /cart,SELECT"},
		{`{ name = "GET /api" } >> { }`, "POST /cart,SELECT,consume,publish"},
		{`{ name = "GET /api" } >> { kind = server }`, "POST /cart"},
		{`{ name = "publish" } < { }`, "POST /cart"},
		{`{ name = "publish" } << { }`, "GET /api,POST /cart"},
		{`{ name = "publish" } ~ { }`, "consume"},
		{`{ name = "SELECT" } ~ { }`, "POST /cart"},
		{`{ name = "GET /api" } ~ { }`, ""},
		{`{ } ~ { }`, "POST /cart,SELECT,consume,publish"},
		{`{ } !< { }`, "SELECT,consume,publish"},
		{`{ name = "GET /api" } !> { }`, "GET /api,consume,publish"},
		{`{ name = "POST /cart" } !>> { }`, "GET /api,POST /cart,SELECT"},
		{`{ name = "consume" } !<< { }`, "SELECT,consume,publish"},
		{`{ name = "publish" } !~ { }`, "GET /api,POST /cart,SELECT,publish"},
		{`{ name = "nope" } !> { kind = server }`, "GET /api,POST /cart"},
		{`{ name = "nope" } > { kind = server }`, ""},
		{`{ status = error } >> { }`, ""},
		{`{ resource.service.name = "frontend" } >> { resource.service.name = "cart" }`, "POST /cart,consume,publish"},
		// union structural: both sides
		{`{ name = "GET /api" } &> { kind = server }`, "GET /api,POST /cart"},
		{`{ name = "GET /api" } &>> { kind = producer }`, "GET /api,publish"},
		{`{ name = "publish" } &< { }`, "POST /cart,publish"},
		{`{ name = "publish" } &<< { kind = server }`, "GET /api,POST /cart,publish"},
		{`{ name = "publish" } &~ { }`, "consume,publish"},
		// chains and grouping
		{`{ name = "GET /api" } > { } > { }`, "consume,publish"},
		{`({ name = "GET /api" } > { }) > { }`, "consume,publish"},
		{`{ name = "GET /api" } > ({ } > { })`, "POST /cart,SELECT"},
		{`{ kind = server } > { } && { status = error }`, "POST /cart,SELECT,consume,publish"},
		{`{ kind = client } > { } && { status = error }`, ""},
		{`{ name = "nope" } || { kind = server } > { kind = server }`, "POST /cart"},
		// pipelines
		{`{ } | count() > 4`, all},
		{`{ } | count() > 5`, ""},
		{`{ } | count() = 5`, all},
		{`{ } | count() != 5`, ""},
		{`count() > 4`, all},
		{`{ } | avg(duration) > 37ms`, all},
		{`{ } | avg(duration) > 38ms`, ""},
		// max over int 200, int 500 and string "500": strings rank above
		// ints in Tempo's type order
		{`{ } | max(span.http.status_code) = 500`, ""},
		{`{ span.http.status_code != nil } | max(span.http.status_code) = 500`, ""},
		{`{ kind = client || kind = server } | max(span.http.status_code) = 500`, ""},
		{`{ span.http.status_code > 0 } | max(span.http.status_code) = 500`, "GET /api,SELECT"},
		{`{ } | min(span.http.status_code) = 200`, all},
		{`{ } | avg(span.http.status_code) = 350`, ""},
		{`{ span.http.status_code > 0 } | avg(span.http.status_code) = 350`, "GET /api,SELECT"},
		{`{ span.http.status_code > 0 } | sum(span.http.status_code) = 700`, "GET /api,SELECT"},
		{`{ } | sum(span.ratio) = 1.5`, all},
		{`{ } | avg(.dne) != 0`, ""},
		{`{ } | sum(duration) = 186ms`, all},
		{`{ } | by(resource.service.name)`, "GET /api,SELECT|POST /cart,consume,publish"},
		{`{ } | by(resource.service.name) | count() > 2`, "POST /cart,consume,publish"},
		{`{ } | by(span.http.method) | count() = 3`, "SELECT,consume,publish"},
		{`{ } | by(kind) | coalesce()`, all},
		{`{ } | by(kind) | { kind = server }`, "GET /api,POST /cart"},
		{`{ } | { status = error }`, "SELECT"},
		{`{ kind = server } | { name = "SELECT" }`, ""},
		{`({ } | count() > 10) || { name = "publish" }`, "publish"},
		{`({ } | count() > 1) && { name = "publish" }`, all},
		{`({ kind = server } | count() > 1) && { name = "publish" }`, "GET /api,POST /cart,publish"},
		{`{ } | select(span.http.method)`, all},
		{`({ } | by(kind) | coalesce()) > { kind = producer }`, "publish"},
	}
	for _, tc := range tests {
		t.Run(tc.q, func(t *testing.T) {
			q, err := Parse(tc.q)
			require.NoError(t, err)
			got, err := q.Eval(td)
			require.NoError(t, err)
			require.Equal(t, tc.want, names(got))
			if tc.want == "" {
				require.Nil(t, got)
			}
		})
	}
}

func TestEvalAttributes(t *testing.T) {
	td := testTrace()
	tests := []struct {
		q         string
		spanAttrs []string // per span of the first spanset, in trace order
		setAttrs  []string // per spanset
	}{
		{`{ .http.status_code = 500 }`, []string{"http.status_code=500"}, []string{""}},
		{`{ kind = server } | select(span.http.method, resource.service.name)`,
			[]string{`http.method="GET" kind="server" service.name="frontend"`, `http.method="POST" kind="server" service.name="cart"`}, []string{""}},
		{`{ status = error } | select(name, duration, span:id, traceDuration, statusMessage)`,
			[]string{`status="error" statusMessage="timeout"`}, []string{""}},
		{`{ .shared != nil }`, []string{`shared="res"`, `shared="res" shared="span"`, `shared="res"`}, []string{""}},
		{`{ } | by(resource.service.name) | count() > 2`,
			[]string{`service.name="cart"`, `service.name="cart"`, `service.name="cart"`},
			[]string{`by(resource.service.name)="cart" count()=3`}},
		{`{ name = "consume" } | by(span.foo)`, []string{""}, []string{`by(span.foo)="nil"`}},
		{`{ } | avg(duration) > 1ms`, nil, []string{`avg(duration)="37.2ms"`}},
		{`{ } | sum(span.http.status_code) = 700`, nil, []string{`sum(span.http.status_code)=700`}},
		{`{ } | avg(span.http.status_code) > 1`, nil, []string{`avg(span.http.status_code)=233.33333333333334`}},
		{`{ } | max(span.ratio) > 1`, nil, []string{`max(span.ratio)=1.5`}},
		{`{ span.http.status_code > 0 } | max(span.http.status_code) > 1`, nil, []string{`max(span.http.status_code)=500`}},
		{`{ } | avg(duration) > 1ms`, nil, []string{`avg(duration)="37.2ms"`}},
		{`{ } | by(kind) | coalesce()`, nil, []string{""}},
		{`{ span.tags = "a" }`, []string{"tags=array(2)"}, []string{""}},
	}
	for _, tc := range tests {
		t.Run(tc.q, func(t *testing.T) {
			q, err := Parse(tc.q)
			require.NoError(t, err)
			got, err := q.Eval(td)
			require.NoError(t, err)
			require.Len(t, got, len(tc.setAttrs))
			for i, ss := range got {
				require.Equal(t, tc.setAttrs[i], kvString(ss.Attributes))
			}
			if tc.spanAttrs != nil {
				require.Len(t, got[0].Spans, len(tc.spanAttrs))
				for i, s := range got[0].Spans {
					require.Equal(t, tc.spanAttrs[i], kvString(s.Attributes), s.Span.Name)
				}
			}
		})
	}
}

func TestEvalMatchedSpanParts(t *testing.T) {
	td := testTrace()
	q, err := Parse(`{ name = "publish" }`)
	require.NoError(t, err)
	got, err := q.Eval(td)
	require.NoError(t, err)
	require.Len(t, got, 1)
	ms := got[0].Spans[0]
	require.Same(t, td.ResourceSpans[1], ms.Resource)
	require.Same(t, td.ResourceSpans[1].ScopeSpans[0], ms.Scope)
	require.Same(t, td.ResourceSpans[1].ScopeSpans[0].Spans[1], ms.Span)
}

// TestEvalTree: structural operators follow Tempo's span tree: spans not
// reachable from a root are disconnected and take no part, roots are
// siblings of each other, and a Zipkin client/server pair sharing an ID
// resolves children by kind.
func TestEvalTree(t *testing.T) {
	sp := func(id, parent byte, name string, kind tracev1.Span_SpanKind) *tracev1.Span {
		s := &tracev1.Span{TraceId: testTraceID, SpanId: sid(id), Name: name, Kind: kind}
		if parent != 0 {
			s.ParentSpanId = sid(parent)
		}
		return s
	}
	td := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{
		sp(1, 0, "root1", tracev1.Span_SPAN_KIND_SERVER),
		sp(2, 1, "a", tracev1.Span_SPAN_KIND_CLIENT),
		sp(2, 2, "a-server", tracev1.Span_SPAN_KIND_SERVER), // zipkin shared ID: child of the client "a"
		sp(3, 2, "b", tracev1.Span_SPAN_KIND_INTERNAL),      // child of the server "a-server"
		sp(4, 0, "root2", tracev1.Span_SPAN_KIND_SERVER),
		sp(5, 9, "orphan", tracev1.Span_SPAN_KIND_INTERNAL),
		sp(6, 5, "orphan-child", tracev1.Span_SPAN_KIND_INTERNAL),
		sp(7, 8, "cycle1", tracev1.Span_SPAN_KIND_INTERNAL),
		sp(8, 7, "cycle2", tracev1.Span_SPAN_KIND_INTERNAL),
	}}}}}}
	tests := []struct{ q, want string }{
		{`{ } > { }`, "a,a-server,b"},
		{`{ name = "a" } > { }`, "a-server"},
		{`{ name = "a-server" } > { }`, "b"},
		{`{ name = "root1" } >> { }`, "a,a-server,b"},
		{`{ } !> { }`, "root1,root2"},
		{`{ } !< { }`, "b,root2"},
		{`{ } ~ { }`, "root1,root2"},
		{`{ } !~ { }`, "a,a-server,b"},
		{`{ name = "orphan" } > { }`, ""},
		{`{ } >> { name = "orphan-child" }`, ""},
		{`{ } !>> { name =~ "orphan.*|cycle.*" }`, ""},
		{`{ name = "orphan" } &> { }`, ""},
		{`{ span:childCount = 1 }`, "a,a-server,cycle1,cycle2,orphan,root1"},
	}
	for _, tc := range tests {
		t.Run(tc.q, func(t *testing.T) {
			q, err := Parse(tc.q)
			require.NoError(t, err)
			got, err := q.Eval(td)
			require.NoError(t, err)
			require.Equal(t, tc.want, names(got))
		})
	}
	// without a root, nothing is connected
	noRoot := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{
		sp(2, 1, "x", tracev1.Span_SPAN_KIND_SERVER), sp(3, 2, "y", tracev1.Span_SPAN_KIND_SERVER),
	}}}}}}
	q, err := Parse(`{ } >> { }`)
	require.NoError(t, err)
	got, err := q.Eval(noRoot)
	require.NoError(t, err)
	require.Nil(t, got)
}

// TestEvalRoot: Tempo's root for rootName/rootServiceName is the last span
// without a parent ID that has a resource and no child_of link into its own
// trace.
func TestEvalRoot(t *testing.T) {
	res := func(svc string) *resourcev1.Resource {
		return &resourcev1.Resource{Attributes: []*commonv1.KeyValue{kvS("service.name", svc)}}
	}
	linked := &tracev1.Span{TraceId: testTraceID, SpanId: sid(3), Name: "linked",
		Links: []*tracev1.Span_Link{{TraceId: testTraceID, SpanId: sid(1), Attributes: []*commonv1.KeyValue{kvS("opentracing.ref_type", "child_of")}}}}
	td := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{
		{Resource: res("a"), ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{TraceId: testTraceID, SpanId: sid(1), Name: "first"}}}}},
		{Resource: res("b"), ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{TraceId: testTraceID, SpanId: sid(2), Name: "second"}, linked}}}},
		{ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{TraceId: testTraceID, SpanId: sid(4), Name: "no-resource"}}}}},
	}}
	for q, want := range map[string]bool{
		`{ rootName = "second" && rootServiceName = "b" }`: true,
		`{ rootName = "first" }`:                           false,
		`{ rootName = "linked" }`:                          false,
		`{ rootName = "no-resource" }`:                     false,
	} {
		p, err := Parse(q)
		require.NoError(t, err)
		got, err := p.Eval(td)
		require.NoError(t, err)
		require.Equal(t, want, got != nil, q)
	}
}

func TestEvalErrors(t *testing.T) {
	td := testTrace()
	q, err := Parse(`({ } | by(kind)) > { }`)
	require.NoError(t, err)
	_, err = q.Eval(td)
	require.True(t, errors.Is(err, ErrSpansetOperationMultiple), "%v", err)
}

func TestEvalEdgeTraces(t *testing.T) {
	q, err := Parse(`{ }`)
	require.NoError(t, err)
	got, err := q.Eval(&tracev1.TracesData{})
	require.NoError(t, err)
	require.Nil(t, got)

	// nil parts, a parent cycle, duplicate span IDs and an orphan must not
	// break anything
	a := &tracev1.Span{SpanId: sid(1), ParentSpanId: sid(2), Name: "a"}
	b := &tracev1.Span{SpanId: sid(2), ParentSpanId: sid(1), Name: "b"}
	c := &tracev1.Span{SpanId: sid(2), ParentSpanId: sid(7), Name: "c"}
	td := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{nil, {ScopeSpans: []*tracev1.ScopeSpans{nil, {Spans: []*tracev1.Span{nil, a, b, c}}}}}}
	for _, s := range []string{`{ } >> { }`, `{ } << { }`, `{ } ~ { }`, `{ } !>> { }`, `{ } &<< { }`, `{ rootName = "a" }`,
		`{ resource.service.name != nil }`, `{ instrumentation:name = "" }`, `{ rootServiceName != nil }`, `{ status = unset } | count() = 3`} {
		q, err := Parse(s)
		require.NoError(t, err, s)
		_, err = q.Eval(td)
		require.NoError(t, err, s)
	}
	q, err = Parse(`{ status = unset && kind = unspecified && instrumentation:name = "" } | count() = 3`)
	require.NoError(t, err)
	got, err = q.Eval(td)
	require.NoError(t, err)
	require.Len(t, got, 1)
	// no span lacks a parent ID, so there is no root: "" as in Tempo's columns
	q, err = Parse(`{ rootName = "" && rootServiceName = "" } | count() = 3`)
	require.NoError(t, err)
	got, err = q.Eval(td)
	require.NoError(t, err)
	require.Len(t, got, 1)
}
