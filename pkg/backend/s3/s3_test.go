package s3

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/flagext"
	miniogo "github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/integration/minio"
	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/backendtest"
)

// testConfig returns a configuration for bucket on srv, defaults from flags.
func testConfig(srv *minio.Server, bucket string) Config {
	var cfg Config
	cfg.RegisterFlagsAndApplyDefaults("storage.trace", flag.NewFlagSet("test", flag.PanicOnError))
	cfg.Endpoint = srv.Endpoint
	cfg.Insecure = true
	cfg.Bucket = bucket
	cfg.Region = "us-east-1"
	cfg.AccessKey = srv.AccessKey
	cfg.SecretKey = flagext.SecretWithValue(srv.SecretKey)
	cfg.PartSize = minPartSize // 20 MiB objects take the multipart path
	cfg.ForcePathStyle = true
	cfg.RetryBackoffInitial = time.Millisecond
	cfg.RetryBackoffMax = 20 * time.Millisecond
	return cfg
}

func newTestBackend(t testing.TB, cfg Config, reg prometheus.Registerer) *Backend {
	t.Helper()
	b, err := New(cfg, log.NewNopLogger(), reg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	require.NoError(t, b.Check(context.Background()))
	return b
}

// TestS3 runs everything that needs MinIO against one server.
func TestS3(t *testing.T) {
	srv := minio.Start(t)
	t.Run("Acceptance", func(t *testing.T) {
		backendtest.AcceptanceTest(t, func(t testing.TB) backend.Backend {
			return newTestBackend(t, testConfig(srv, srv.NewBucket(t, "acceptance")), nil)
		})
	})
	t.Run("AcceptanceWithPrefixInstrumented", func(t *testing.T) {
		// Several prefixes share one bucket: each must look empty to the others.
		bucket := srv.NewBucket(t, "prefixed")
		n := 0
		backendtest.AcceptanceTest(t, func(t testing.TB) backend.Backend {
			n++
			cfg := testConfig(srv, bucket)
			cfg.Prefix = fmt.Sprintf("/tenant-data/run%d/", n)
			reg := prometheus.NewRegistry()
			return backend.Instrument(newTestBackend(t, cfg, reg), "s3", reg)
		})
	})
	t.Run("Prefix", func(t *testing.T) { testPrefix(t, srv) })
	t.Run("WrongCredentials", func(t *testing.T) { testWrongCredentials(t, srv) })
	t.Run("MissingBucket", func(t *testing.T) { testMissingBucket(t, srv) })
	t.Run("EnvCredentials", func(t *testing.T) { testEnvCredentials(t, srv) })
	t.Run("RetrySlowDown", func(t *testing.T) { testRetrySlowDown(t, srv) })
	t.Run("RetryExhausted", func(t *testing.T) { testRetryExhausted(t, srv) })
	t.Run("Hedging", func(t *testing.T) { testHedging(t, srv) })
	t.Run("SecretsNotLogged", func(t *testing.T) { testSecretsNotLogged(t, srv) })
	t.Run("EndpointWithScheme", func(t *testing.T) {
		cfg := testConfig(srv, srv.NewBucket(t, "scheme"))
		cfg.Endpoint = "http://" + srv.Endpoint + "/"
		cfg.Insecure = false // the scheme wins
		b := newTestBackend(t, cfg, nil)
		require.NoError(t, b.Put(context.Background(), "k", strings.NewReader("v"), 1))
	})
}

func testPrefix(t *testing.T, srv *minio.Server) {
	ctx := context.Background()
	bucket := srv.NewBucket(t, "prefix")
	cfgA := testConfig(srv, bucket)
	cfgA.Prefix = "traces"
	a := newTestBackend(t, cfgA, nil)
	b := newTestBackend(t, testConfig(srv, bucket), nil) // no prefix

	require.NoError(t, a.Put(ctx, "t1/blk/meta.json", strings.NewReader("{}"), 2))
	keys, err := a.List(ctx, "")
	require.NoError(t, err)
	require.Equal(t, []string{"t1/"}, keys)
	keys, err = b.List(ctx, "")
	require.NoError(t, err)
	require.Equal(t, []string{"traces/"}, keys, "the unprefixed view sees the prefix as a directory")
	data, err := backend.ReadAll(ctx, b, "traces/t1/blk/meta.json")
	require.NoError(t, err)
	require.Equal(t, "{}", string(data))

	// The object really lives at <prefix>/<key> in the bucket.
	_, err = srv.Client(t).StatObject(ctx, bucket, "traces/t1/blk/meta.json", miniogo.StatObjectOptions{})
	require.NoError(t, err)
	_, err = a.Get(ctx, "traces/t1/blk/meta.json")
	require.ErrorIs(t, err, backend.ErrNotFound)

	for _, bad := range []string{"a//b", "../x", "a/./b"} {
		cfg := testConfig(srv, bucket)
		cfg.Prefix = bad
		_, err := New(cfg, nil, nil)
		require.ErrorIs(t, err, backend.ErrInvalidKey, "prefix %q", bad)
	}
}

func testWrongCredentials(t *testing.T, srv *minio.Server) {
	bucket := srv.NewBucket(t, "creds")
	for name, mutate := range map[string]func(*Config){
		"wrong secret":     func(c *Config) { c.SecretKey = flagext.SecretWithValue("not-the-secret") },
		"unknown user":     func(c *Config) { c.AccessKey = "nobody" },
		"no credentials":   func(c *Config) { c.AccessKey, c.SecretKey = "", flagext.Secret{} },
		"wrong signature2": func(c *Config) { c.SignatureV2 = true; c.SecretKey = flagext.SecretWithValue("nope") },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(srv, bucket)
			mutate(&cfg)
			if cfg.AccessKey == "" {
				// Keep the chain away from real AWS sources: empty env and files.
				t.Setenv("AWS_ACCESS_KEY_ID", "")
				t.Setenv("AWS_SECRET_ACCESS_KEY", "")
				t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
				t.Setenv("MINIO_ACCESS_KEY", "")
				t.Setenv("MINIO_ROOT_USER", "")
				t.Setenv("HOME", t.TempDir())
				// IAM would be asked last; point it at a closed loopback port.
				t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/creds")
			}
			reg := prometheus.NewRegistry()
			b, err := New(cfg, log.NewNopLogger(), reg)
			require.NoError(t, err)
			defer b.Close()
			err = b.Check(context.Background())
			require.Error(t, err)
			require.Contains(t, err.Error(), fmt.Sprintf("s3: access denied for bucket %q at endpoint %s", bucket, srv.Endpoint))
			require.NotContains(t, err.Error(), srv.SecretKey)
			require.Equal(t, 0.0, counterValue(t, b.metrics.retries), "403 is not retried")
		})
	}
}

func testMissingBucket(t *testing.T, srv *minio.Server) {
	ctx := context.Background()
	cfg := testConfig(srv, "no-such-bucket-here")
	b, err := New(cfg, nil, nil)
	require.NoError(t, err)
	defer b.Close()
	err = b.Check(ctx)
	require.EqualError(t, err, fmt.Sprintf("s3: bucket %q does not exist at endpoint %s", "no-such-bucket-here", srv.Endpoint))

	// Operations say the same, and a missing bucket is not a missing object.
	_, err = b.Get(ctx, "k")
	require.Error(t, err)
	require.False(t, errors.Is(err, backend.ErrNotFound), "missing bucket reported as missing object: %v", err)
	require.Contains(t, err.Error(), "does not exist at endpoint")
	_, err = b.List(ctx, "")
	require.Error(t, err)
	require.Contains(t, err.Error(), "does not exist at endpoint")
	require.Error(t, b.Put(ctx, "k", strings.NewReader("v"), 1))
}

func testEnvCredentials(t *testing.T, srv *minio.Server) {
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	cfg := testConfig(srv, srv.NewBucket(t, "env"))
	cfg.AccessKey, cfg.SecretKey = "", flagext.Secret{}
	b := newTestBackend(t, cfg, nil)
	ctx := context.Background()
	require.NoError(t, b.Put(ctx, "from/env", strings.NewReader("ok"), 2))
	data, err := backend.ReadAll(ctx, b, "from/env")
	require.NoError(t, err)
	require.Equal(t, "ok", string(data))
}

// faultProxy sits between the backend and MinIO on 127.0.0.1. It answers 503
// SlowDown to the first slowDowns requests, and holds the first ranged GET
// until its client gives up or a minute passes.
type faultProxy struct {
	*httptest.Server
	slowDowns     atomic.Int32
	delayFirstGet atomic.Bool
	requests      atomic.Int32
	delayed       atomic.Int32
	lostCanceled  chan struct{}
}

func newFaultProxy(t *testing.T, srv *minio.Server) *faultProxy {
	target, err := url.Parse(srv.URL())
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = nil
	p := &faultProxy{lostCanceled: make(chan struct{})}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		if p.slowDowns.Add(-1) >= 0 {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
			return
		}
		if r.Method == http.MethodGet && r.Header.Get("Range") != "" && p.delayFirstGet.CompareAndSwap(true, false) {
			p.delayed.Add(1)
			select {
			case <-r.Context().Done():
				close(p.lostCanceled)
				return
			case <-time.After(time.Minute):
			}
		}
		// The client signed for the proxy's host; keep the Host header as is.
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *faultProxy) endpoint() string { return strings.TrimPrefix(p.URL, "http://") }

func testRetrySlowDown(t *testing.T, srv *minio.Server) {
	ctx := context.Background()
	p := newFaultProxy(t, srv)
	cfg := testConfig(srv, srv.NewBucket(t, "retry"))
	cfg.Endpoint = p.endpoint()
	reg := prometheus.NewRegistry()
	b := newTestBackend(t, cfg, reg)

	data := bytes.Repeat([]byte("retry me "), 1000)
	for _, op := range []struct {
		name string
		run  func() error
	}{
		{"put", func() error { return b.Put(ctx, "r/obj", bytes.NewReader(data), int64(len(data))) }},
		{"put unknown size", func() error { return b.Put(ctx, "r/obj2", bytes.NewReader(data), -1) }},
		{"get range", func() error {
			got, err := b.GetRange(ctx, "r/obj", 9, 9)
			if err == nil && string(got) != "retry me " {
				err = fmt.Errorf("got %q", got)
			}
			return err
		}},
		{"get", func() error {
			got, err := backend.ReadAll(ctx, b, "r/obj")
			if err == nil && !bytes.Equal(got, data) {
				err = errors.New("get returned other bytes")
			}
			return err
		}},
		{"size", func() error { _, err := b.Size(ctx, "r/obj"); return err }},
		{"list", func() error { _, err := b.List(ctx, "r"); return err }},
		{"delete", func() error { return b.Delete(ctx, "r/obj2") }},
	} {
		before := counterValue(t, b.metrics.retries.WithLabelValues("503"))
		p.slowDowns.Store(3)
		require.NoError(t, op.run(), op.name)
		require.Equal(t, 3.0, counterValue(t, b.metrics.retries.WithLabelValues("503"))-before, op.name)
	}
	var slowDowns float64
	for _, method := range []string{"GET", "HEAD", "PUT", "POST", "DELETE"} {
		slowDowns += counterValue(t, b.metrics.attempts.WithLabelValues(method, "503"))
	}
	require.Equal(t, 21.0, slowDowns, "every 503 the proxy sent was seen and retried")
}

func testRetryExhausted(t *testing.T, srv *minio.Server) {
	p := newFaultProxy(t, srv)
	cfg := testConfig(srv, srv.NewBucket(t, "exhaust"))
	cfg.Endpoint = p.endpoint()
	cfg.RetryMaxAttempts = 4
	b, err := New(cfg, nil, nil)
	require.NoError(t, err)
	defer b.Close()
	p.slowDowns.Store(1000)
	_, err = b.GetRange(context.Background(), "any", 0, 1) // a GET: HEAD answers carry no error code
	require.Error(t, err)
	var resp miniogo.ErrorResponse
	require.True(t, errors.As(err, &resp), "S3 error kept: %v", err)
	require.Equal(t, "SlowDown", resp.Code)
	require.Equal(t, int32(4), p.requests.Load(), "exactly retry_max_attempts attempts")
}

func testHedging(t *testing.T, srv *minio.Server) {
	ctx := context.Background()
	p := newFaultProxy(t, srv)
	cfg := testConfig(srv, srv.NewBucket(t, "hedge"))
	cfg.Endpoint = p.endpoint()
	cfg.HedgeRequestsAt = 50 * time.Millisecond
	cfg.HedgeRequestsUpTo = 2
	b := newTestBackend(t, cfg, prometheus.NewRegistry())
	data := []byte("0123456789")
	require.NoError(t, b.Put(ctx, "h/obj", bytes.NewReader(data), int64(len(data))))

	p.delayFirstGet.Store(true)
	got, err := b.GetRange(ctx, "h/obj", 2, 5)
	require.NoError(t, err)
	require.Equal(t, "23456", string(got))
	require.Equal(t, int32(1), p.delayed.Load())
	select {
	case <-p.lostCanceled: // the stuck original was cancelled
	case <-time.After(30 * time.Second):
		t.Fatal("the slow original request was never cancelled")
	}
	require.Equal(t, 1.0, counterValue(t, b.metrics.hedgedWins))
	require.GreaterOrEqual(t, counterValue(t, b.metrics.hedged), 1.0)
}

func testSecretsNotLogged(t *testing.T, srv *minio.Server) {
	var logs bytes.Buffer
	cfg := testConfig(srv, "missing-bucket")
	cfg.SecretKey = flagext.SecretWithValue("super-secret-value-1234")
	cfg.SessionToken = flagext.SecretWithValue("session-token-5678")
	b, err := New(cfg, log.NewLogfmtLogger(&logs), nil)
	require.NoError(t, err)
	defer b.Close()
	err = b.Check(context.Background())
	require.Error(t, err)
	_, err2 := b.Get(context.Background(), "k")
	require.Error(t, err2)
	require.NotEmpty(t, logs.String())
	wrapped := struct{ S3 Config }{cfg}
	for _, text := range []string{logs.String(), err.Error(), err2.Error(), fmt.Sprintf("%v %+v", cfg, cfg), fmt.Sprintf("%+v", wrapped)} {
		require.NotContains(t, text, "super-secret-value-1234")
		require.NotContains(t, text, "session-token-5678")
	}
}
