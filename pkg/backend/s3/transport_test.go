package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func counterValue(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	var sum float64
	for m := range ch {
		var pb dto.Metric
		require.NoError(t, m.Write(&pb))
		sum += pb.GetCounter().GetValue()
	}
	return sum
}

func newTestTransport(maxAttempts int, initial time.Duration, hedgeAt time.Duration) (*retryTransport, *http.Transport, *transportMetrics) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	m := newTransportMetrics(prometheus.NewRegistry())
	var rt http.RoundTripper = &countingTransport{next: base, metrics: m}
	rt = &hedgeTransport{next: rt, delay: hedgeAt, upTo: 3, metrics: m}
	return &retryTransport{next: rt, maxAttempts: maxAttempts, initial: initial, max: 4 * initial, maxBuffer: 1 << 20, metrics: m}, base, m
}

// failFirst answers status to the first n requests, then 200 with the body it got.
func failFirst(n int32, status int) (*httptest.Server, *atomic.Int32, *[][]byte) {
	var seen atomic.Int32
	var mu sync.Mutex
	bodies := &[][]byte{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		*bodies = append(*bodies, body)
		mu.Unlock()
		if seen.Add(1) <= n {
			w.WriteHeader(status)
			_, _ = io.WriteString(w, "<Error><Code>SlowDown</Code></Error>")
			return
		}
		_, _ = w.Write(body)
	}))
	return srv, &seen, bodies
}

func TestRetryTransportSlowDown(t *testing.T) {
	srv, seen, bodies := failFirst(3, http.StatusServiceUnavailable)
	defer srv.Close()
	rt, base, m := newTestTransport(5, time.Millisecond, 0)
	defer base.CloseIdleConnections()

	// A body without GetBody, as minio-go sends it, is buffered and replayed.
	payload := []byte("part payload")
	req, err := http.NewRequest(http.MethodPut, srv.URL, io.NopCloser(bytes.NewReader(payload)))
	require.NoError(t, err)
	req.ContentLength = int64(len(payload))
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, payload, got)
	require.Equal(t, int32(4), seen.Load())
	for _, b := range *bodies {
		require.Equal(t, payload, b, "every attempt carries the whole body")
	}
	require.Equal(t, 3.0, counterValue(t, m.retries.WithLabelValues("503")))
	require.Equal(t, 3.0, counterValue(t, m.attempts.WithLabelValues("PUT", "503")))
	require.Equal(t, 1.0, counterValue(t, m.attempts.WithLabelValues("PUT", "200")))
}

func TestRetryTransportExhausted(t *testing.T) {
	srv, seen, _ := failFirst(100, http.StatusServiceUnavailable)
	defer srv.Close()
	rt, base, _ := newTestTransport(3, time.Millisecond, 0)
	defer base.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err, "the last 503 goes up to minio-go, which parses the S3 error")
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, int32(3), seen.Load(), "bounded attempts")
}

func TestRetryTransportNotOnClientErrors(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusForbidden, http.StatusRequestedRangeNotSatisfiable} {
		srv, seen, _ := failFirst(100, status)
		rt, base, _ := newTestTransport(5, time.Millisecond, 0)
		req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
		require.NoError(t, err)
		resp, err := rt.RoundTrip(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, status, resp.StatusCode)
		require.Equal(t, int32(1), seen.Load(), "status %d is not retried", status)
		base.CloseIdleConnections()
		srv.Close()
	}
}

// flakyDialer refuses the first n connections, as a restarting server would.
type flakyTransport struct {
	next  http.RoundTripper
	fails atomic.Int32
}

func (f *flakyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if f.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	}
	return f.next.RoundTrip(req)
}

func TestRetryTransportTransientErrors(t *testing.T) {
	srv, seen, _ := failFirst(0, 0)
	defer srv.Close()
	base := http.DefaultTransport.(*http.Transport).Clone()
	defer base.CloseIdleConnections()
	m := newTransportMetrics(nil)
	flaky := &flakyTransport{next: base}
	flaky.fails.Store(2)
	rt := &retryTransport{next: flaky, maxAttempts: 4, initial: time.Millisecond, max: time.Millisecond, maxBuffer: 1 << 20, metrics: m}
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, int32(1), seen.Load())
	require.Equal(t, 2.0, counterValue(t, m.retries.WithLabelValues("transport")))
}

func TestRetryTransportStopsOnCancel(t *testing.T) {
	srv, seen, _ := failFirst(100, http.StatusServiceUnavailable)
	defer srv.Close()
	rt, base, _ := newTestTransport(1000, time.Hour, 0) // backoff far longer than the test
	defer base.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for seen.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	_, err = rt.RoundTrip(req)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, int32(1), seen.Load())
}

func TestRetryTransportBodyReadError(t *testing.T) {
	srv, seen, _ := failFirst(0, 0)
	defer srv.Close()
	rt, base, _ := newTestTransport(5, time.Millisecond, 0)
	defer base.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPut, srv.URL, io.NopCloser(io.MultiReader(strings.NewReader("abc"), &brokenReader{})))
	require.NoError(t, err)
	req.ContentLength = 10
	_, err = rt.RoundTrip(req)
	require.Error(t, err)
	require.Equal(t, int32(0), seen.Load(), "a broken body is never sent")
}

type brokenReader struct{}

func (*brokenReader) Read([]byte) (int, error) { return 0, errors.New("disk read error") }

func TestBackoffBounds(t *testing.T) {
	r := &retryTransport{initial: 10 * time.Millisecond, max: 80 * time.Millisecond}
	for attempt := range 100 {
		limit := min(80*time.Millisecond, 10*time.Millisecond<<min(attempt, 20))
		d := r.backoff(attempt)
		require.GreaterOrEqual(t, d, time.Duration(0))
		require.LessOrEqual(t, d, limit, "attempt %d", attempt)
	}
}

func TestHedgeTransport(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var (
		seen          atomic.Int32
		firstCanceled = make(chan struct{})
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) == 1 {
			// The original is stuck until the hedge wins and cancels it.
			select {
			case <-r.Context().Done():
				close(firstCanceled)
				return
			case <-time.After(time.Minute):
			}
		}
		_, _ = io.WriteString(w, "hedged answer")
	}))
	rt, base, m := newTestTransport(1, time.Millisecond, 20*time.Millisecond)
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, "hedged answer", string(body))
	select {
	case <-firstCanceled: // the loser was cancelled
	case <-time.After(30 * time.Second):
		t.Fatal("the slow original request was never cancelled")
	}
	require.Equal(t, 1.0, counterValue(t, m.hedgedWins))
	require.GreaterOrEqual(t, counterValue(t, m.hedged), 1.0)
	base.CloseIdleConnections()
	srv.Close()
}

func TestHedgeTransportOnlyReads(t *testing.T) {
	var seen atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		<-release
	}))
	defer srv.Close()
	rt, base, m := newTestTransport(1, time.Millisecond, time.Millisecond)
	defer base.CloseIdleConnections()
	done := make(chan error)
	go func() {
		req, _ := http.NewRequest(http.MethodPut, srv.URL, strings.NewReader("x"))
		resp, err := rt.RoundTrip(req)
		if err == nil {
			err = resp.Body.Close()
		}
		done <- err
	}()
	for seen.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // many hedge delays: a hedge would have been sent
	close(release)
	require.NoError(t, <-done)
	require.Equal(t, int32(1), seen.Load())
	require.Equal(t, 0.0, counterValue(t, m.hedged))
}

func TestExactReader(t *testing.T) {
	read := func(data string, size int64) ([]byte, error) {
		return io.ReadAll(&exactReader{r: strings.NewReader(data), remaining: size, size: size})
	}
	got, err := read("hello", 5)
	require.NoError(t, err)
	require.Equal(t, "hello", string(got))
	_, err = read("hell", 5)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	_, err = read("hello!", 5)
	require.ErrorContains(t, err, "longer")
	got, err = read("", 0)
	require.NoError(t, err)
	require.Empty(t, got)
	_, err = read("x", 0)
	require.Error(t, err)

	// io.ReadFull into an exactly-sized buffer must still see the error.
	buf := make([]byte, 5)
	_, err = io.ReadFull(&exactReader{r: strings.NewReader("hello!"), remaining: 5, size: 5}, buf)
	require.Error(t, err)
}
