package s3

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/grafana/dskit/crypto/tls"
	"github.com/grafana/dskit/flagext"

	"github.com/rubatodb/rubato/pkg/backend"
)

// Server-side encryption types (Tempo's storage.trace.s3.sse.type).
const (
	SSEKMS = "SSE-KMS"
	SSES3  = "SSE-S3"
	SSEC   = "SSE-C"
)

const (
	// minPartSize is S3's smallest part for a multipart upload.
	minPartSize = 5 << 20
	// defaultPartSize is what minio-go would pick too; spelled out so that
	// the retry layer knows how big a part body it may have to replay.
	defaultPartSize = 16 << 20
)

// SSEConfig configures server-side encryption, as Tempo's sse block.
type SSEConfig struct {
	Type                  string         `yaml:"type"`
	KMSKeyID              string         `yaml:"kms_key_id"`
	KMSEncryptionContext  string         `yaml:"kms_encryption_context"`
	CustomerEncryptionKey flagext.Secret `yaml:"encryption_key"`
}

// Config configures the S3 backend. The YAML keys are Tempo's
// storage.trace.s3 keys; a Tempo configuration is accepted unchanged. Keys
// marked "accepted" are parsed so that Tempo configurations load, but do
// nothing here.
type Config struct {
	tls.ClientConfig `yaml:",inline"`

	Bucket       string         `yaml:"bucket"`
	Prefix       string         `yaml:"prefix"`
	Endpoint     string         `yaml:"endpoint"`
	Region       string         `yaml:"region"`
	AccessKey    string         `yaml:"access_key"`
	SecretKey    flagext.Secret `yaml:"secret_key"`
	SessionToken flagext.Secret `yaml:"session_token"`
	Insecure     bool           `yaml:"insecure"`
	PartSize     uint64         `yaml:"part_size"`

	HedgeRequestsAt     time.Duration `yaml:"hedge_requests_at"`
	HedgeRequestsUpTo   int           `yaml:"hedge_requests_up_to"`
	RetryMaxAttempts    int           `yaml:"retry_max_attempts"`
	RetryBackoffInitial time.Duration `yaml:"retry_backoff_initial"`
	RetryBackoffMax     time.Duration `yaml:"retry_backoff_max"`

	SignatureV2            bool              `yaml:"signature_v2"`
	ForcePathStyle         bool              `yaml:"forcepathstyle"`
	UseDualStack           bool              `yaml:"enable_dual_stack"`
	BucketLookupType       int               `yaml:"bucket_lookup_type"`
	Tags                   map[string]string `yaml:"tags"`
	StorageClass           string            `yaml:"storage_class"`
	Metadata               map[string]string `yaml:"metadata"`
	NativeAWSAuthEnabled   bool              `yaml:"native_aws_auth_enabled"` // accepted (deprecated in Tempo)
	ListBlocksConcurrency  int               `yaml:"list_blocks_concurrency"` // accepted; for the block-list poller
	DisableMultipartUpload bool              `yaml:"disable_multipart_upload"`
	SSE                    SSEConfig         `yaml:"sse"`

	// Rubato additions (Tempo has no S3 timeouts).
	ResponseHeaderTimeout time.Duration `yaml:"response_header_timeout"`
	IdleConnTimeout       time.Duration `yaml:"idle_conn_timeout"`
}

func prefixed(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// RegisterFlagsAndApplyDefaults registers the flags under prefix (for example
// "storage.trace") and sets every default.
func (cfg *Config) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	p := func(name string) string { return prefixed(prefix, "s3."+name) }
	cfg.ClientConfig.RegisterFlagsWithPrefix(prefixed(prefix, "s3"), f)
	f.StringVar(&cfg.Bucket, p("bucket"), "", "S3 bucket to store blocks in.")
	f.StringVar(&cfg.Prefix, p("prefix"), "", "Path prefix inside the bucket.")
	f.StringVar(&cfg.Endpoint, p("endpoint"), "", "S3 endpoint, host[:port] (an http:// or https:// scheme overrides insecure).")
	f.StringVar(&cfg.Region, p("region"), "", "S3 region; empty asks the server.")
	f.StringVar(&cfg.AccessKey, p("access_key"), "", "S3 access key; empty uses AWS_ACCESS_KEY_ID, MINIO_ACCESS_KEY, credential files, then IAM.")
	f.Var(&cfg.SecretKey, p("secret_key"), "S3 secret key.")
	f.Var(&cfg.SessionToken, p("session_token"), "S3 session token.")
	f.BoolVar(&cfg.Insecure, p("insecure"), false, "Use plain HTTP.")
	f.Uint64Var(&cfg.PartSize, p("part_size"), defaultPartSize, "Multipart upload part size in bytes (at least 5 MiB).")
	f.DurationVar(&cfg.HedgeRequestsAt, p("hedge_requests_at"), 0, "Start a hedged GET after this long without a response; 0 disables hedging.")
	f.IntVar(&cfg.HedgeRequestsUpTo, p("hedge_requests_up_to"), 2, "Most requests, the original included, one hedged GET may send.")
	f.IntVar(&cfg.RetryMaxAttempts, p("retry_max_attempts"), 10, "Most attempts per request on throttling and transient errors.")
	f.DurationVar(&cfg.RetryBackoffInitial, p("retry_backoff_initial"), 200*time.Millisecond, "Backoff before the first retry; doubles each retry (with full jitter).")
	f.DurationVar(&cfg.RetryBackoffMax, p("retry_backoff_max"), time.Second, "Longest backoff between retries.")
	f.BoolVar(&cfg.SignatureV2, p("signature_v2"), false, "Sign requests with signature V2 instead of V4.")
	f.BoolVar(&cfg.ForcePathStyle, p("forcepathstyle"), false, "Use path-style bucket addressing.")
	f.BoolVar(&cfg.UseDualStack, p("enable_dual_stack"), false, "Use the dual-stack (IPv4/IPv6) S3 endpoints.")
	f.IntVar(&cfg.BucketLookupType, p("bucket_lookup_type"), 0, "Bucket addressing: 0 auto, 1 virtual-hosted, 2 path.")
	f.StringVar(&cfg.StorageClass, p("storage_class"), "", "Storage class of written objects.")
	f.IntVar(&cfg.ListBlocksConcurrency, p("list_blocks_concurrency"), 3, "Concurrent list calls of the block-list poller.")
	f.BoolVar(&cfg.DisableMultipartUpload, p("disable_multipart_upload"), false, "Write every object with one PUT (at most 5 GiB).")
	f.StringVar(&cfg.SSE.Type, p("sse.type"), "", "Server-side encryption: SSE-S3, SSE-KMS or SSE-C.")
	f.StringVar(&cfg.SSE.KMSKeyID, p("sse.kms-key-id"), "", "KMS key ID for SSE-KMS.")
	f.StringVar(&cfg.SSE.KMSEncryptionContext, p("sse.kms-encryption-context"), "", "KMS encryption context (JSON) for SSE-KMS.")
	f.Var(&cfg.SSE.CustomerEncryptionKey, p("sse.encryption-key"), "32-byte key for SSE-C.")
	f.DurationVar(&cfg.ResponseHeaderTimeout, p("response_header_timeout"), 2*time.Minute, "Longest wait for response headers of one HTTP attempt; 0 waits forever.")
	f.DurationVar(&cfg.IdleConnTimeout, p("idle_conn_timeout"), 90*time.Second, "How long an idle connection to S3 is kept.")
}

// Validate checks the configuration.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.Bucket == "" {
		errs = append(errs, errors.New("bucket must be set"))
	}
	if cfg.Endpoint == "" {
		errs = append(errs, errors.New("endpoint must be set"))
	}
	if p := strings.Trim(cfg.Prefix, "/"); p != "" {
		if err := backend.ValidateKey(p); err != nil {
			errs = append(errs, fmt.Errorf("prefix: %w", err))
		}
	}
	if cfg.AccessKey != "" && cfg.SecretKey.String() == "" {
		errs = append(errs, errors.New("access_key is set but secret_key is empty"))
	}
	if cfg.AccessKey == "" && cfg.SecretKey.String() != "" {
		errs = append(errs, errors.New("secret_key is set but access_key is empty"))
	}
	if cfg.PartSize != 0 && cfg.PartSize < minPartSize {
		errs = append(errs, fmt.Errorf("part_size %d is below S3's minimum of %d", cfg.PartSize, minPartSize))
	}
	if cfg.HedgeRequestsAt < 0 {
		errs = append(errs, errors.New("hedge_requests_at must not be negative"))
	}
	if cfg.HedgeRequestsAt > 0 && cfg.HedgeRequestsUpTo < 1 {
		errs = append(errs, errors.New("hedge_requests_up_to must be at least 1"))
	}
	if cfg.RetryMaxAttempts < 1 {
		errs = append(errs, errors.New("retry_max_attempts must be at least 1"))
	}
	if cfg.RetryBackoffInitial <= 0 || cfg.RetryBackoffMax < cfg.RetryBackoffInitial {
		errs = append(errs, errors.New("retry_backoff_initial must be positive and at most retry_backoff_max"))
	}
	if cfg.BucketLookupType < 0 || cfg.BucketLookupType > 2 {
		errs = append(errs, fmt.Errorf("bucket_lookup_type %d: want 0 (auto), 1 (virtual-hosted) or 2 (path)", cfg.BucketLookupType))
	}
	switch cfg.SSE.Type {
	case "", SSES3:
	case SSEKMS:
		if cfg.SSE.KMSKeyID == "" {
			errs = append(errs, errors.New("sse.kms_key_id must be set for SSE-KMS"))
		}
	case SSEC:
		if len(cfg.SSE.CustomerEncryptionKey.String()) != 32 {
			errs = append(errs, errors.New("sse.encryption_key must be 32 bytes for SSE-C"))
		}
	default:
		errs = append(errs, fmt.Errorf("sse.type %q: want %s, %s or %s", cfg.SSE.Type, SSES3, SSEKMS, SSEC))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("s3 config: %w", err)
	}
	return nil
}

// String describes the configuration without secrets, so that a Config
// printed with %v or %+v (alone or inside a larger struct) never leaks them.
func (cfg Config) String() string {
	redact := func(s flagext.Secret) string {
		if s.String() == "" {
			return ""
		}
		return "<redacted>"
	}
	return fmt.Sprintf("{bucket:%q prefix:%q endpoint:%q region:%q access_key:%q secret_key:%q session_token:%q insecure:%t part_size:%d hedge_requests_at:%s hedge_requests_up_to:%d retry_max_attempts:%d sse:%q}",
		cfg.Bucket, cfg.Prefix, cfg.Endpoint, cfg.Region, cfg.AccessKey, redact(cfg.SecretKey), redact(cfg.SessionToken),
		cfg.Insecure, cfg.PartSize, cfg.HedgeRequestsAt, cfg.HedgeRequestsUpTo, cfg.RetryMaxAttempts, cfg.SSE.Type)
}
