package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// SelfTestCommand is the subcommand `rubato selftest`: the Helm chart's
// `helm test` pod runs it against the release's Service.
const SelfTestCommand = "selftest"

// SelfTest is `rubato selftest -otlp-http=URL -query=URL [-tenant=ID]`: it
// pushes one new trace (random IDs) over OTLP HTTP, then reads it back by
// ID through the query API until it is there with the span it sent, or the
// timeout passes. It returns 0 and says so on stdout, or 1 with the reason
// on stderr. It checks a running Rubato from outside, as a client does.
func SelfTest(args []string, stdout, stderr io.Writer) int {
	f := flag.NewFlagSet("rubato selftest", flag.ContinueOnError)
	f.SetOutput(stderr)
	otlpURL := f.String("otlp-http", "http://127.0.0.1:4318", "Base URL of the OTLP HTTP receiver (POST /v1/traces is appended).")
	queryURL := f.String("query", "http://127.0.0.1:3200", "Base URL of the query API (GET /api/traces/<id> is appended).")
	tenantID := f.String("tenant", "", "X-Scope-OrgID to send (needed when multitenancy is on).")
	timeout := f.Duration("timeout", time.Minute, "How long to wait for the trace to be readable.")
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	id, err := selfTest(ctx, strings.TrimSuffix(*otlpURL, "/"), strings.TrimSuffix(*queryURL, "/"), *tenantID)
	if err != nil {
		fmt.Fprintf(stderr, "selftest failed: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "selftest OK: trace %s pushed to %s and read back from %s\n", id, *otlpURL, *queryURL)
	return 0
}

func selfTest(ctx context.Context, otlpURL, queryURL, tenantID string) (string, error) {
	traceID, spanID := make([]byte, 16), make([]byte, 8)
	_, _ = rand.Read(traceID)
	_, _ = rand.Read(spanID)
	const spanName = "rubato-selftest"
	now := uint64(time.Now().UnixNano())
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracev1.ResourceSpans{{
		Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{{
			Key: "service.name", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: "rubato-selftest"}},
		}}},
		ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{
			TraceId: traceID, SpanId: spanID, Name: spanName,
			Kind:              tracev1.Span_SPAN_KIND_CLIENT,
			StartTimeUnixNano: now - uint64(time.Millisecond), EndTimeUnixNano: now,
		}}}},
	}}}
	body, err := proto.Marshal(req)
	if err != nil {
		return "", err
	}
	id := hex.EncodeToString(traceID)

	post, err := http.NewRequestWithContext(ctx, http.MethodPost, otlpURL+"/v1/traces", bytes.NewReader(body))
	if err != nil {
		return id, err
	}
	post.Header.Set("Content-Type", "application/x-protobuf")
	setTenant(post, tenantID)
	status, msg, err := do(post)
	if err != nil {
		return id, fmt.Errorf("push: %w", err)
	}
	if status != http.StatusOK {
		return id, fmt.Errorf("push: %d %s", status, msg)
	}

	// The trace is readable once acknowledged; retry only to ride out a
	// query path that is still starting.
	var last string
	for {
		get, err := http.NewRequestWithContext(ctx, http.MethodGet, queryURL+"/api/traces/"+id, nil)
		if err != nil {
			return id, err
		}
		get.Header.Set("Accept", "application/protobuf")
		setTenant(get, tenantID)
		status, msg, err := do(get)
		switch {
		case err != nil:
			last = err.Error()
		case status == http.StatusOK:
			var tr rubatopb.Trace
			if err := proto.Unmarshal([]byte(msg), &tr); err != nil {
				return id, fmt.Errorf("read: decode: %w", err)
			}
			if hasSpan(&tr, spanID, spanName) {
				return id, nil
			}
			return id, fmt.Errorf("read: trace %s came back without span %x %q", id, spanID, spanName)
		default:
			last = fmt.Sprintf("%d %s", status, strings.TrimSpace(msg))
		}
		select {
		case <-ctx.Done():
			return id, fmt.Errorf("read: trace %s not readable in time (last answer: %s)", id, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func setTenant(r *http.Request, tenantID string) {
	if tenantID != "" {
		r.Header.Set("X-Scope-OrgID", tenantID)
	}
}

func do(r *http.Request) (int, string, error) {
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, string(b), err
}

func hasSpan(tr *rubatopb.Trace, spanID []byte, name string) bool {
	for _, rs := range tr.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				if bytes.Equal(s.SpanId, spanID) && s.Name == name {
					return true
				}
			}
		}
	}
	return false
}
