package traceql_test

import (
	"fmt"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/traceql"
)

func str(k, v string) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: v}}}
}

// A search source prunes with Conditions, then decides with Eval.
func ExampleQuery_Eval() {
	q, err := traceql.Parse(`{ resource.service.name = "cart" && status = error } | select(span.db.system)`)
	if err != nil {
		fmt.Println(err)
		return
	}
	c := q.Conditions()
	fmt.Println("all:", c.All)
	for _, cond := range c.Conds {
		fmt.Println("cond:", cond)
	}

	td := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{
		Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{str("service.name", "cart")}},
		ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{
			{SpanId: []byte{0, 0, 0, 0, 0, 0, 0, 1}, Name: "GET /cart"},
			{SpanId: []byte{0, 0, 0, 0, 0, 0, 0, 2}, ParentSpanId: []byte{0, 0, 0, 0, 0, 0, 0, 1}, Name: "SELECT",
				Status: &tracev1.Status{Code: tracev1.Status_STATUS_CODE_ERROR}, Attributes: []*commonv1.KeyValue{str("db.system", "postgresql")}},
		}}},
	}}}
	spansets, err := q.Eval(td)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, ss := range spansets {
		for _, s := range ss.Spans {
			fmt.Print(s.Span.Name)
			for _, kv := range s.Attributes {
				fmt.Printf(" %s=%s", kv.Key, kv.Value.GetStringValue())
			}
			fmt.Println()
		}
	}
	// Output:
	// all: true
	// cond: resource.service.name = "cart"
	// cond: status = error
	// SELECT service.name=cart status=error db.system=postgresql
}

func ExampleParse_error() {
	_, err := traceql.Parse("{ span.http.status_code = 200 &&\n  name = }")
	fmt.Println(err)
	_, err = traceql.Parse(`{ } | rate()`)
	fmt.Println(err)
	// Output:
	// parse error at line 2, col 10: expected a field or value, found "}"
	// unsupported TraceQL feature: metrics function rate()
}
