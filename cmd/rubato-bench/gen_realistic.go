package main

import (
	"fmt"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Profiles of generated traffic.
const (
	// profileRealistic is production-like traffic, the default: nine
	// services of two pods each, ~14 resource attributes with per-pod
	// names and IDs, HTTP server and client spans whose URLs carry IDs,
	// database spans with statements carrying literals, 3 % errors with
	// exception events and stack traces; ~450 bytes of OTLP per span.
	// Every ID-like value (URL IDs, statement literals, request IDs,
	// exception messages) is fresh per request, so neither dictionaries
	// nor compression see repeats a real fleet would not send.
	profileRealistic = "realistic"
	// profileSimple is the earlier workload: three services, ~380 bytes
	// per span, one request ID per span fresh per request. Figures on it
	// flatter CPU and bytes per span about 2× (issue 12 item 10).
	profileSimple = "simple"
)

// placeholder returns a 16-hex-digit value that template.next rewrites
// per request (the template records its offsets as a request ID).
func placeholder() string { return fmt.Sprintf("%x", random(8)) }

type benchService struct {
	name, kind string // kind: http service, or its datastore
	db         string // "postgresql", "redis" or ""
}

var realisticServices = []benchService{
	{"api-gateway", "edge", ""}, {"frontend", "web", ""}, {"checkout", "api", "postgresql"},
	{"cart", "api", "redis"}, {"payments", "api", "postgresql"}, {"inventory", "api", "postgresql"},
	{"shipping", "api", "postgresql"}, {"users", "api", "postgresql"}, {"notifications", "worker", "redis"},
}

const podsPerService = 2

func podResource(svc benchService, pod int) *resourcev1.Resource {
	hash := fmt.Sprintf("%x", random(5))
	podName := fmt.Sprintf("%s-%s-%s", svc.name, hash[:9], hash[5:10])
	return &resourcev1.Resource{Attributes: []*commonv1.KeyValue{
		str("service.name", svc.name), str("service.namespace", "shop"), str("service.version", "2.14."+fmt.Sprint(pod+3)),
		str("service.instance.id", fmt.Sprintf("%x-%x-%x-%x-%x", random(4), random(2), random(2), random(2), random(6))),
		str("deployment.environment.name", "production"),
		str("k8s.cluster.name", "prod-eu-west-1"), str("k8s.namespace.name", "shop-prod"),
		str("k8s.deployment.name", svc.name), str("k8s.pod.name", podName),
		str("k8s.pod.uid", fmt.Sprintf("%x-%x-%x-%x-%x", random(4), random(2), random(2), random(2), random(6))),
		str("k8s.node.name", fmt.Sprintf("ip-10-0-%d-%d.eu-west-1.compute.internal", pod*16+3, len(svc.name)*7)),
		str("host.name", podName), str("telemetry.sdk.language", "go"), str("telemetry.sdk.version", "1.38.0"),
	}}
}

// newRealisticTemplate builds traces × spansPer spans of profileRealistic.
// A trace enters at the gateway (SERVER), calls a chain of services (CLIENT
// then SERVER in the callee), and each service queries its datastore
// (CLIENT); spans land in the ResourceSpans of the pod serving them, as a
// Collector's batch processor groups them.
func newRealisticTemplate(traces, spansPer int) (*template, error) {
	now := uint64(time.Now().UnixNano())
	type podKey struct{ svc, pod int }
	pods := map[podKey]*tracev1.ScopeSpans{}
	req := &coltracepb.ExportTraceServiceRequest{}
	scopeOf := func(svc, pod int) *tracev1.ScopeSpans {
		k := podKey{svc, pod}
		if ss := pods[k]; ss != nil {
			return ss
		}
		ss := &tracev1.ScopeSpans{Scope: &commonv1.InstrumentationScope{Name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", Version: "0.63.0"}}
		req.ResourceSpans = append(req.ResourceSpans, &tracev1.ResourceSpans{
			Resource: podResource(realisticServices[svc], pod), ScopeSpans: []*tracev1.ScopeSpans{ss},
			SchemaUrl: "https://opentelemetry.io/schemas/1.26.0",
		})
		pods[k] = ss
		return ss
	}
	var traceIDs, spanIDs [][]byte
	nSpan := 0
	for t := range traces {
		tid := random(16)
		traceIDs = append(traceIDs, tid)
		pod := t % podsPerService
		var parent []byte
		svc := 0
		start := now + uint64(t)*7_000_000
		for s := range spansPer {
			sid := random(8)
			spanIDs = append(spanIDs, sid)
			begin := start + uint64(s)*800_000
			end := begin + uint64(40_000_000-s*3_000_000+t%7*1_100_000)
			sp := &tracev1.Span{TraceId: tid, SpanId: sid, ParentSpanId: parent, StartTimeUnixNano: begin, EndTimeUnixNano: end, Status: &tracev1.Status{}}
			id := placeholder()
			here := realisticServices[svc]
			switch {
			case s == 0 || s%3 == 1: // SERVER span of the service being called
				route := fmt.Sprintf("/api/v1/%s/{id}", here.name)
				sp.Kind, sp.Name = tracev1.Span_SPAN_KIND_SERVER, "GET "+route
				sp.Attributes = []*commonv1.KeyValue{
					str("http.request.method", "GET"), str("http.route", route), str("url.path", fmt.Sprintf("/api/v1/%s/%s", here.name, id)),
					str("url.scheme", "http"), num("http.response.status_code", 200), str("server.address", here.name+".shop.svc.cluster.local"),
					num("server.port", 8080), str("client.address", fmt.Sprintf("10.42.%d.%d", sid[0], sid[1])),
					str("user_agent.original", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Safari/605.1.15"),
					str("network.protocol.version", "1.1"), str("app.request_id", placeholder()),
				}
				parent = sid
			case s%3 == 2 && here.db != "": // datastore call
				sp.Kind = tracev1.Span_SPAN_KIND_CLIENT
				if here.db == "redis" {
					sp.Name = "HGETALL"
					sp.Attributes = []*commonv1.KeyValue{str("db.system", "redis"), str("db.operation.name", "HGETALL"),
						str("db.query.text", "HGETALL "+here.name+":"+id), str("server.address", here.name+"-redis.shop.svc.cluster.local"), num("server.port", 6379)}
				} else {
					table := here.name + "_items"
					sp.Name = "SELECT shop." + table
					sp.Attributes = []*commonv1.KeyValue{str("db.system", "postgresql"), str("db.namespace", "shop"), str("db.operation.name", "SELECT"),
						str("db.collection.name", table), str("db.query.text", fmt.Sprintf("SELECT id, status, total, updated_at FROM %s WHERE owner_id = '%s' ORDER BY updated_at DESC LIMIT 20", table, id)),
						str("server.address", "pg-"+here.name+".shop.svc.cluster.local"), num("server.port", 5432), num("db.response.returned_rows", int64(s%20))}
				}
			default: // HTTP call to the next service
				svc = 1 + (svc+t+s)%(len(realisticServices)-1)
				next := realisticServices[svc]
				sp.Kind, sp.Name = tracev1.Span_SPAN_KIND_CLIENT, "GET"
				sp.Attributes = []*commonv1.KeyValue{str("http.request.method", "GET"), str("url.full", fmt.Sprintf("http://%s.shop.svc.cluster.local:8080/api/v1/%s/%s", next.name, next.name, id)),
					str("server.address", next.name+".shop.svc.cluster.local"), num("server.port", 8080), num("http.response.status_code", 200)}
				parent = sid
			}
			if nSpan%33 == 16 { // 3 % errors, with the exception that caused them
				sp.Status = &tracev1.Status{Code: tracev1.Status_STATUS_CODE_ERROR, Message: "upstream request failed"}
				for _, kv := range sp.Attributes {
					if kv.Key == "http.response.status_code" {
						kv.Value = &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: 503}}
					}
				}
				sp.Events = []*tracev1.Span_Event{{TimeUnixNano: end - 1000, Name: "exception", Attributes: []*commonv1.KeyValue{
					str("exception.type", "*net.OpError"),
					str("exception.message", "dial tcp 10.42.7.19:8080: connect: connection refused (request "+placeholder()+")"),
					str("exception.stacktrace", "goroutine 1841 [running]:\nmain.(*client).do(0xc000212000, {0x1a2b3c0, 0xc0003c4e10})\n\t/app/client.go:142 +0x2f1\nmain.(*handler).ServeHTTP(0xc0001b6090, {0x1a30f40, 0xc000488000}, 0xc0004a6200)\n\t/app/handler.go:77 +0x1c5\nnet/http.serverHandler.ServeHTTP({0xc000131e90}, {0x1a30f40, 0xc000488000}, 0xc0004a6200)\n\t/usr/local/go/src/net/http/server.go:3210 +0x8e"),
				}}}
			}
			scopeOf(svc, pod).Spans = append(scopeOf(svc, pod).Spans, sp)
			nSpan++
		}
	}
	return newTemplateFrom(req, traceIDs, spanIDs)
}
