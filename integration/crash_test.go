package integration

import (
	"context"
	"crypto/rand"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// makeRequest builds an OTLP request of traces × spansPer spans with fresh
// random IDs.
func makeRequest(traces, spansPer int) (*coltracepb.ExportTraceServiceRequest, [][]byte) {
	ss := &tracev1.ScopeSpans{Scope: &commonv1.InstrumentationScope{Name: "crash-test"}}
	ids := make([][]byte, traces)
	now := uint64(time.Now().UnixNano())
	for i := range ids {
		ids[i] = randBytes(16)
		for j := 0; j < spansPer; j++ {
			ss.Spans = append(ss.Spans, &tracev1.Span{
				TraceId: ids[i], SpanId: randBytes(8), Name: "op", Kind: tracev1.Span_SPAN_KIND_SERVER,
				StartTimeUnixNano: now, EndTimeUnixNano: now + 1000,
				Attributes: []*commonv1.KeyValue{{Key: "i", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: int64(j)}}}},
			})
		}
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracev1.ResourceSpans{{
		Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{{Key: "service.name",
			Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: "crash"}}}}},
		ScopeSpans: []*tracev1.ScopeSpans{ss},
	}}}, ids
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randDuration(max time.Duration) time.Duration {
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(max)))
	return time.Duration(n.Int64())
}

// TestKill9DuringIngest kills the server with SIGKILL while four clients
// push, at a random moment, several times over, including while blocks are
// being cut and flushed; after each restart every acknowledged span must be
// found.
func TestKill9DuringIngest(t *testing.T) {
	s := startServer(t, options{IdlePeriod: "200ms"})
	const spansPer = 5
	acked := map[string]bool{}
	var mu sync.Mutex
	for round := 0; round < 3; round++ {
		conn, err := grpc.NewClient(s.otlpGRPC(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		c := coltracepb.NewTraceServiceClient(conn)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					req, ids := makeRequest(10, spansPer)
					resp, err := c.Export(ctx, req)
					if err != nil || resp.GetPartialSuccess().GetRejectedSpans() > 0 {
						continue // not (wholly) acknowledged: nothing promised
					}
					mu.Lock()
					for _, id := range ids {
						acked[string(id)] = true
					}
					mu.Unlock()
				}
			}()
		}
		time.Sleep(200*time.Millisecond + randDuration(600*time.Millisecond))
		s.kill()
		cancel()
		wg.Wait()
		conn.Close()
		s.start()
	}
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, acked)
	ids := make(chan string)
	var lost sync.Map
	var cwg sync.WaitGroup
	for w := 0; w < 4; w++ {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for id := range ids {
				if got := s.traceByID(t, []byte(id), ""); countSpans(got) != spansPer {
					lost.Store(id, countSpans(got))
				}
			}
		}()
	}
	for id := range acked {
		ids <- id
	}
	close(ids)
	cwg.Wait()
	lost.Range(func(k, v any) bool {
		t.Errorf("acknowledged trace %x: %d of %d spans found", k, v, spansPer)
		return true
	})
	t.Logf("%d acknowledged traces all found after 3 kill -9 restarts", len(acked))
}
