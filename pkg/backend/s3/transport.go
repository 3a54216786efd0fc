package s3

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// transportMetrics counts what happens below minio-go, per HTTP attempt.
type transportMetrics struct {
	attempts   *prometheus.CounterVec
	retries    *prometheus.CounterVec
	hedged     prometheus.Counter
	hedgedWins prometheus.Counter
}

func newTransportMetrics(reg prometheus.Registerer) *transportMetrics {
	m := &transportMetrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_backend_s3_http_attempts_total",
			Help: "HTTP attempts sent to S3, retries and hedged requests included, by method and status code (\"error\" when no response came).",
		}, []string{"method", "status"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_backend_s3_retries_total",
			Help: "S3 requests retried after a throttling, server or transport error, by reason.",
		}, []string{"reason"}),
		hedged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_backend_s3_hedged_requests_total",
			Help: "Extra S3 GET/HEAD requests sent because the first was slow.",
		}),
		hedgedWins: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_backend_s3_hedged_wins_total",
			Help: "Hedged S3 requests that answered before the original.",
		}),
	}
	if reg != nil {
		m.attempts = registerOrExisting(reg, m.attempts)
		m.retries = registerOrExisting(reg, m.retries)
		m.hedged = registerOrExisting(reg, m.hedged)
		m.hedgedWins = registerOrExisting(reg, m.hedgedWins)
	}
	return m
}

func registerOrExisting[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// countingTransport counts every HTTP attempt.
type countingTransport struct {
	next    http.RoundTripper
	metrics *transportMetrics
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	status := "error"
	if err == nil {
		status = strconv.Itoa(resp.StatusCode)
	}
	c.metrics.attempts.WithLabelValues(req.Method, status).Inc()
	return resp, err
}

// errBody marks a failure to read the request body: the caller's data, not
// the network, is at fault, so it is never retried.
type errBody struct{ err error }

func (e *errBody) Error() string { return "read request body: " + e.err.Error() }
func (e *errBody) Unwrap() error { return e.err }

// retryTransport retries throttled (429, 503 SlowDown), failed (500, 502,
// 504) and transport-failed attempts with exponential backoff and full
// jitter: before retry n it sleeps a random time in [0, min(max, initial*2^n)].
// A request body is replayed from GetBody, or buffered when it is at most
// maxBuffer bytes; a larger body without GetBody is sent once.
type retryTransport struct {
	next        http.RoundTripper
	maxAttempts int
	initial     time.Duration
	max         time.Duration
	maxBuffer   int64
	metrics     *transportMetrics
}

func (r *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.maxAttempts <= 1 {
		return r.next.RoundTrip(req)
	}
	getBody, err := r.replayableBody(req)
	if err != nil {
		return nil, err
	}
	if getBody == nil {
		return r.next.RoundTrip(req)
	}
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		try := req.Clone(ctx)
		if try.Body, err = getBody(); err != nil {
			return nil, err
		}
		resp, err := r.next.RoundTrip(try)
		reason := retryReason(ctx, resp, err)
		if reason == "" || attempt+1 >= r.maxAttempts {
			return resp, err
		}
		if resp != nil {
			// Drain a little so the connection can be reused.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			_ = resp.Body.Close()
		}
		r.metrics.retries.WithLabelValues(reason).Inc()
		timer := time.NewTimer(r.backoff(attempt))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
}

// replayableBody returns a function yielding a fresh copy of the request
// body, or nil when the body cannot be replayed.
func (r *retryTransport) replayableBody(req *http.Request) (func() (io.ReadCloser, error), error) {
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		return func() (io.ReadCloser, error) { return req.Body, nil }, nil
	case req.GetBody != nil:
		first := true
		return func() (io.ReadCloser, error) {
			if first {
				first = false
				return req.Body, nil
			}
			return req.GetBody()
		}, nil
	case req.ContentLength > 0 && req.ContentLength <= r.maxBuffer:
		// Read the body before cloning: a signer that fills in trailers as
		// the body is read has then finished, and the clone copies them.
		data, err := io.ReadAll(io.LimitReader(req.Body, req.ContentLength+1))
		closeErr := req.Body.Close()
		if err != nil {
			return nil, &errBody{err: err}
		}
		if closeErr != nil {
			return nil, &errBody{err: closeErr}
		}
		if int64(len(data)) != req.ContentLength {
			return nil, &errBody{err: fmt.Errorf("body has %d bytes, ContentLength says %d", len(data), req.ContentLength)}
		}
		return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, nil
	default:
		return nil, nil
	}
}

func (r *retryTransport) backoff(attempt int) time.Duration {
	d := r.max
	if attempt < 32 {
		if e := r.initial << attempt; e > 0 && e < d {
			d = e
		}
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// retryReason says why an attempt deserves a retry, or "" when it does not.
func retryReason(ctx context.Context, resp *http.Response, err error) string {
	if err != nil {
		var (
			body     *errBody
			unknown  x509.UnknownAuthorityError
			hostname x509.HostnameError
			invalid  x509.CertificateInvalidError
		)
		switch {
		case ctx.Err() != nil, errors.As(err, &body),
			errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid):
			return ""
		}
		return "transport"
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return strconv.Itoa(resp.StatusCode)
	}
	return ""
}

// hedgeTransport sends a GET or HEAD again when no response came within
// delay, up to upTo requests in all; the first response wins and the other
// requests are cancelled. Transport errors do not win while another request
// is still in flight.
type hedgeTransport struct {
	next    http.RoundTripper
	delay   time.Duration
	upTo    int
	metrics *transportMetrics
}

type hedgeResult struct {
	idx  int
	resp *http.Response
	err  error
}

func (h *hedgeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if h.delay <= 0 || h.upTo < 2 || (req.Method != http.MethodGet && req.Method != http.MethodHead) ||
		(req.Body != nil && req.Body != http.NoBody) {
		return h.next.RoundTrip(req)
	}
	ctx := req.Context()
	results := make(chan hedgeResult, h.upTo)
	var cancels []context.CancelFunc
	launch := func() {
		actx, cancel := context.WithCancel(ctx)
		cancels = append(cancels, cancel)
		try := req.Clone(actx)
		idx := len(cancels) - 1
		go func() {
			resp, err := h.next.RoundTrip(try)
			results <- hedgeResult{idx: idx, resp: resp, err: err}
		}()
	}
	launch()
	timer := time.NewTimer(h.delay)
	defer timer.Stop()
	inFlight := 1
	var firstErr error
	for {
		select {
		case <-timer.C:
			if len(cancels) < h.upTo && ctx.Err() == nil {
				h.metrics.hedged.Inc()
				launch()
				inFlight++
				timer.Reset(h.delay)
			}
		case res := <-results:
			inFlight--
			if res.err == nil {
				for i, cancel := range cancels {
					if i != res.idx {
						cancel()
					}
				}
				if res.idx > 0 {
					h.metrics.hedgedWins.Inc()
				}
				if inFlight > 0 {
					go drainHedges(results, inFlight)
				}
				res.resp.Body = &cancelOnClose{ReadCloser: res.resp.Body, cancel: cancels[res.idx]}
				return res.resp, nil
			}
			cancels[res.idx]()
			if firstErr == nil {
				firstErr = res.err
			}
			if inFlight == 0 {
				// Everything sent so far failed: give up, and let the
				// retry layer above decide what to do.
				return nil, firstErr
			}
		}
	}
}

// drainHedges closes the responses of cancelled losers as they arrive.
func drainHedges(results <-chan hedgeResult, n int) {
	for range n {
		if res := <-results; res.resp != nil {
			_ = res.resp.Body.Close()
		}
	}
}

// cancelOnClose releases the winning request's context with its body.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
