package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rubatodb/rubato/pkg/backend"
)

// Backend stores objects in one S3 bucket under an optional prefix.
type Backend struct {
	cfg      Config
	client   *minio.Client
	core     minio.Core
	base     *http.Transport
	endpoint string // host[:port], for error messages
	prefix   string // "" or "p/"
	sse      encrypt.ServerSide
	getSSE   encrypt.ServerSide // SSE-C only: reads must present the key too
	metrics  *transportMetrics
	logger   log.Logger
	closed   atomic.Bool
}

var _ backend.Backend = (*Backend)(nil)

// New builds the backend. It does no network I/O; call Check at start-up.
func New(cfg Config, logger log.Logger, reg prometheus.Registerer) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = log.NewNopLogger()
	}
	endpoint, secure := splitEndpoint(cfg.Endpoint, !cfg.Insecure)

	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConns = 256
	base.MaxIdleConnsPerHost = 128
	base.IdleConnTimeout = cfg.IdleConnTimeout
	base.ResponseHeaderTimeout = cfg.ResponseHeaderTimeout
	if secure {
		tlsCfg, err := cfg.ClientConfig.GetTLSConfig()
		if err != nil {
			return nil, fmt.Errorf("s3: tls config: %w", err)
		}
		base.TLSClientConfig = tlsCfg
	}

	partSize := cfg.PartSize
	if partSize == 0 {
		partSize = defaultPartSize
	}
	metrics := newTransportMetrics(reg)
	var rt http.RoundTripper = &countingTransport{next: base, metrics: metrics}
	rt = &hedgeTransport{next: rt, delay: cfg.HedgeRequestsAt, upTo: cfg.HedgeRequestsUpTo, metrics: metrics}
	rt = &retryTransport{
		next:        rt,
		maxAttempts: cfg.RetryMaxAttempts,
		initial:     cfg.RetryBackoffInitial,
		max:         cfg.RetryBackoffMax,
		// A part plus streaming-signature overhead, or a small single PUT.
		maxBuffer: int64(partSize) + int64(partSize)/16 + 64<<10,
		metrics:   metrics,
	}

	creds, source := newCredentials(cfg, base)
	lookup := minio.BucketLookupType(cfg.BucketLookupType)
	if cfg.ForcePathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(endpoint, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Region:       cfg.Region,
		BucketLookup: lookup,
		Transport:    rt,
		MaxRetries:   1, // retryTransport retries; minio-go must not multiply attempts
	})
	if err != nil {
		return nil, fmt.Errorf("s3: client for endpoint %s: %w", endpoint, err)
	}
	if cfg.UseDualStack {
		client.SetS3EnableDualstack(true)
	}
	b := &Backend{
		cfg:      cfg,
		client:   client,
		core:     minio.Core{Client: client},
		base:     base,
		endpoint: endpoint,
		prefix:   normalizePrefix(cfg.Prefix),
		metrics:  metrics,
		logger:   logger,
	}
	if b.sse, b.getSSE, err = newSSE(cfg.SSE); err != nil {
		return nil, err
	}
	// Never log cfg itself or any secret: only what identifies the store.
	level.Info(logger).Log("msg", "s3 backend configured", "endpoint", endpoint, "bucket", cfg.Bucket,
		"prefix", b.prefix, "secure", secure, "credentials", source, "hedge_at", cfg.HedgeRequestsAt,
		"retry_max_attempts", cfg.RetryMaxAttempts)
	return b, nil
}

// splitEndpoint strips an http:// or https:// scheme, which then decides
// whether TLS is used.
func splitEndpoint(endpoint string, secure bool) (string, bool) {
	if rest, ok := strings.CutPrefix(endpoint, "https://"); ok {
		return strings.TrimSuffix(rest, "/"), true
	}
	if rest, ok := strings.CutPrefix(endpoint, "http://"); ok {
		return strings.TrimSuffix(rest, "/"), false
	}
	return strings.TrimSuffix(endpoint, "/"), secure
}

func normalizePrefix(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return ""
	}
	return p + "/"
}

// newCredentials returns static credentials from the config, or the AWS
// chain: AWS_* env, MINIO_* env, ~/.aws/credentials, ~/.mc/config.json, IAM.
func newCredentials(cfg Config, base http.RoundTripper) (*credentials.Credentials, string) {
	if cfg.AccessKey != "" {
		if cfg.SignatureV2 {
			return credentials.NewStaticV2(cfg.AccessKey, cfg.SecretKey.String(), cfg.SessionToken.String()), "static (v2)"
		}
		return credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey.String(), cfg.SessionToken.String()), "static"
	}
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.EnvMinio{},
		&credentials.FileAWSCredentials{},
		&credentials.FileMinioClient{},
		&credentials.IAM{Client: &http.Client{Transport: base}},
	}), "chain (env, files, IAM)"
}

func newSSE(cfg SSEConfig) (put, get encrypt.ServerSide, err error) {
	switch cfg.Type {
	case "":
		return nil, nil, nil
	case SSES3:
		return encrypt.NewSSE(), nil, nil
	case SSEKMS:
		var kmsContext any
		if cfg.KMSEncryptionContext != "" {
			kmsContext = cfg.KMSEncryptionContext
		}
		sse, err := encrypt.NewSSEKMS(cfg.KMSKeyID, kmsContext)
		if err != nil {
			return nil, nil, fmt.Errorf("s3: sse-kms: %w", err)
		}
		return sse, nil, nil
	case SSEC:
		sse, err := encrypt.NewSSEC([]byte(cfg.CustomerEncryptionKey.String()))
		if err != nil {
			return nil, nil, errors.New("s3: sse-c: invalid encryption key") // never echo the key
		}
		return sse, sse, nil
	}
	return nil, nil, fmt.Errorf("s3: unknown sse type %q", cfg.Type)
}

// Check verifies once, at start-up, that the bucket exists and the
// credentials may use it, with one clear error otherwise.
func (b *Backend) Check(ctx context.Context) error {
	ok, err := b.client.BucketExists(ctx, b.cfg.Bucket)
	if err != nil {
		var resp minio.ErrorResponse
		if errors.As(err, &resp) {
			switch resp.Code {
			case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
				"ExpiredToken", "InvalidSecurity", "AllAccessDisabled", "AccountProblem":
				return fmt.Errorf("s3: access denied for bucket %q at endpoint %s (%s): check access_key/secret_key or the AWS credentials in the environment", b.cfg.Bucket, b.endpoint, resp.Code)
			}
			if resp.StatusCode == http.StatusForbidden {
				return fmt.Errorf("s3: access denied for bucket %q at endpoint %s: check access_key/secret_key or the AWS credentials in the environment", b.cfg.Bucket, b.endpoint)
			}
		}
		return fmt.Errorf("s3: check bucket %q at endpoint %s: %w", b.cfg.Bucket, b.endpoint, err)
	}
	if !ok {
		return fmt.Errorf("s3: bucket %q does not exist at endpoint %s", b.cfg.Bucket, b.endpoint)
	}
	return nil
}

func (b *Backend) object(key string) string { return b.prefix + key }

func (b *Backend) begin(ctx context.Context, op, key string, validate func(string) error) error {
	if err := validate(key); err != nil {
		return err
	}
	if b.closed.Load() {
		return fmt.Errorf("s3 %s %q: backend closed", op, key)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3 %s %q: %w", op, key, err)
	}
	return nil
}

// wrapErr maps S3 errors onto the backend sentinels.
func (b *Backend) wrapErr(ctx context.Context, op, key string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = errors.Join(ctxErr, err)
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		switch {
		case resp.Code == "NoSuchBucket":
			return fmt.Errorf("s3 %s %q: bucket %q does not exist at endpoint %s: %w", op, key, b.cfg.Bucket, b.endpoint, err)
		case resp.Code == "NoSuchKey" || resp.StatusCode == http.StatusNotFound:
			return fmt.Errorf("s3 %s %q: %w", op, key, backend.ErrNotFound)
		case resp.Code == "InvalidRange" || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
			return fmt.Errorf("s3 %s %q: %w", op, key, backend.ErrOutOfRange)
		}
	}
	return fmt.Errorf("s3 %s %q: %w", op, key, err)
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := b.begin(ctx, "put", key, backend.ValidateKey); err != nil {
		return err
	}
	body := io.Reader(&ctxReader{ctx: ctx, r: r})
	if size >= 0 {
		body = &exactReader{r: body, remaining: size, size: size}
	}
	_, err := b.client.PutObject(ctx, b.cfg.Bucket, b.object(key), body, size, minio.PutObjectOptions{
		ContentType:          "application/octet-stream",
		PartSize:             b.cfg.PartSize,
		UserTags:             b.cfg.Tags,
		UserMetadata:         b.cfg.Metadata,
		StorageClass:         b.cfg.StorageClass,
		ServerSideEncryption: b.sse,
		DisableMultipart:     b.cfg.DisableMultipartUpload,
	})
	if err != nil {
		return b.wrapErr(ctx, "put", key, err)
	}
	return nil
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := b.begin(ctx, "get", key, backend.ValidateKey); err != nil {
		return nil, err
	}
	rc, _, _, err := b.core.GetObject(ctx, b.cfg.Bucket, b.object(key), minio.GetObjectOptions{ServerSideEncryption: b.getSSE})
	if err != nil {
		return nil, b.wrapErr(ctx, "get", key, err)
	}
	return rc, nil
}

// GetRange implements backend.Backend.
func (b *Backend) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	if err := b.begin(ctx, "get range", key, backend.ValidateKey); err != nil {
		return nil, err
	}
	if off < 0 || length < 0 {
		return nil, fmt.Errorf("s3 get range %q: %w", key, backend.CheckRange(off, length, 0))
	}
	if length == 0 {
		// HTTP cannot ask for zero bytes; a HEAD settles existence and bounds.
		size, err := b.Size(ctx, key)
		if err != nil {
			return nil, err
		}
		if err := backend.CheckRange(off, 0, size); err != nil {
			return nil, fmt.Errorf("s3 get range %q: %w", key, err)
		}
		return []byte{}, nil
	}
	opts := minio.GetObjectOptions{ServerSideEncryption: b.getSSE}
	if err := opts.SetRange(off, off+length-1); err != nil {
		return nil, fmt.Errorf("s3 get range %q: %w", key, backend.ErrOutOfRange)
	}
	rc, _, header, err := b.core.GetObject(ctx, b.cfg.Bucket, b.object(key), opts)
	if err != nil {
		return nil, b.wrapErr(ctx, "get range", key, err)
	}
	defer rc.Close()
	// Trust the server's Content-Range, not the asked length, before
	// allocating: S3 truncates a range running past the end, and a server
	// that ignored Range would send the whole object from byte 0.
	start, end, total, err := parseContentRange(header.Get("Content-Range"))
	if err != nil || start != off {
		return nil, fmt.Errorf("s3 get range %q: server answered Content-Range %q to a request for bytes %d-%d", key, header.Get("Content-Range"), off, off+length-1)
	}
	if end-start+1 != length {
		return nil, fmt.Errorf("s3 get range %q: %w", key, backend.CheckRange(off, length, total))
	}
	buf := make([]byte, length)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, b.wrapErr(ctx, "get range", key, err)
	}
	return buf, nil
}

// Size implements backend.Backend.
func (b *Backend) Size(ctx context.Context, key string) (int64, error) {
	if err := b.begin(ctx, "size", key, backend.ValidateKey); err != nil {
		return 0, err
	}
	info, err := b.client.StatObject(ctx, b.cfg.Bucket, b.object(key), minio.StatObjectOptions{ServerSideEncryption: b.getSSE})
	if err != nil {
		return 0, b.wrapErr(ctx, "size", key, err)
	}
	return info.Size, nil
}

// List implements backend.Backend.
func (b *Backend) List(ctx context.Context, dir string) ([]string, error) {
	if err := b.begin(ctx, "list", dir, backend.ValidateDir); err != nil {
		return nil, err
	}
	prefix := b.prefix
	if d := strings.TrimSuffix(dir, "/"); d != "" {
		prefix += d + "/"
	}
	out := []string{}
	// Ranging over the channel to the end lets minio-go's lister goroutine exit.
	var firstErr error
	for obj := range b.client.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			if firstErr == nil {
				firstErr = obj.Err
			}
			continue
		}
		if obj.Key == prefix {
			continue // a "directory marker" object some tools create
		}
		out = append(out, strings.TrimPrefix(obj.Key, b.prefix))
	}
	if firstErr != nil {
		return nil, b.wrapErr(ctx, "list", dir, firstErr)
	}
	sort.Strings(out)
	return out, nil
}

// ListObjects implements backend.Backend: sizes and LastModified come with
// the listing (one request per 1000 keys), no HEAD per object.
func (b *Backend) ListObjects(ctx context.Context, dir string) ([]backend.ObjectInfo, error) {
	if err := b.begin(ctx, "list objects", dir, backend.ValidateDir); err != nil {
		return nil, err
	}
	prefix := b.prefix
	if d := strings.TrimSuffix(dir, "/"); d != "" {
		prefix += d + "/"
	}
	out := []backend.ObjectInfo{}
	var firstErr error
	for obj := range b.client.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if obj.Err != nil {
			if firstErr == nil {
				firstErr = obj.Err
			}
			continue
		}
		if obj.Key == prefix || strings.HasSuffix(obj.Key, "/") {
			continue // a "directory marker", or a common prefix
		}
		out = append(out, backend.ObjectInfo{Key: strings.TrimPrefix(obj.Key, b.prefix), Size: obj.Size, LastModified: obj.LastModified})
	}
	if firstErr != nil {
		return nil, b.wrapErr(ctx, "list objects", dir, firstErr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.begin(ctx, "delete", key, backend.ValidateKey); err != nil {
		return err
	}
	if err := b.client.RemoveObject(ctx, b.cfg.Bucket, b.object(key), minio.RemoveObjectOptions{}); err != nil {
		if err = b.wrapErr(ctx, "delete", key, err); errors.Is(err, backend.ErrNotFound) {
			return nil // already gone
		}
		return err
	}
	return nil
}

// Close implements backend.Backend: it drops idle connections.
func (b *Backend) Close() error {
	b.closed.Store(true)
	b.base.CloseIdleConnections()
	return nil
}

// ctxReader stops reading the body once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// exactReader fails unless r yields exactly size bytes. Before handing over
// the last bytes it looks one byte ahead, so an over-long body fails the
// upload while it is still in flight (minio-go stops reading at size and
// io.ReadFull would swallow a later error).
type exactReader struct {
	r         io.Reader
	remaining int64
	size      int64
	done      bool
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.remaining == 0 {
		if !e.done {
			if err := e.checkEnd(); err != nil {
				return 0, err
			}
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.remaining {
		p = p[:e.remaining]
	}
	n, err := e.r.Read(p)
	e.remaining -= int64(n)
	if e.remaining == 0 {
		if cerr := e.checkEnd(); cerr != nil {
			return 0, cerr
		}
		return n, nil
	}
	if errors.Is(err, io.EOF) {
		return n, fmt.Errorf("body ended after %d bytes, want %d: %w", e.size-e.remaining, e.size, io.ErrUnexpectedEOF)
	}
	return n, err
}

func (e *exactReader) checkEnd() error {
	e.done = true
	var one [1]byte
	for {
		n, err := e.r.Read(one[:])
		if n > 0 {
			return fmt.Errorf("body is longer than %d bytes", e.size)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// parseContentRange parses "bytes <start>-<end>/<total>" (total may be "*").
func parseContentRange(v string) (start, end, total int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("content range %q: no bytes unit", v)
	}
	span, size, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("content range %q: no total", v)
	}
	first, last, ok := strings.Cut(span, "-")
	if !ok {
		return 0, 0, 0, fmt.Errorf("content range %q: no span", v)
	}
	if start, err = strconv.ParseInt(first, 10, 64); err != nil {
		return 0, 0, 0, fmt.Errorf("content range %q: %w", v, err)
	}
	if end, err = strconv.ParseInt(last, 10, 64); err != nil {
		return 0, 0, 0, fmt.Errorf("content range %q: %w", v, err)
	}
	total = -1
	if size != "*" {
		if total, err = strconv.ParseInt(size, 10, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("content range %q: %w", v, err)
		}
	}
	if start < 0 || end < start || (total >= 0 && end >= total) {
		return 0, 0, 0, fmt.Errorf("content range %q: inconsistent", v)
	}
	return start, end, total, nil
}
