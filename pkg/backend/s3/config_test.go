package s3

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// tempoS3 is a storage.trace.s3 block using every key Tempo documents.
const tempoS3 = `
bucket: traces
prefix: tempo
endpoint: s3.us-east-1.amazonaws.com
region: us-east-1
access_key: AKIA
secret_key: shh
session_token: tok
insecure: false
part_size: 10485760
hedge_requests_at: 500ms
hedge_requests_up_to: 3
retry_max_attempts: 5
retry_backoff_initial: 100ms
retry_backoff_max: 2s
signature_v2: false
forcepathstyle: true
enable_dual_stack: false
bucket_lookup_type: 2
tags: {team: obs}
storage_class: STANDARD
metadata: {k: v}
native_aws_auth_enabled: false
list_blocks_concurrency: 3
disable_multipart_upload: false
tls_ca_path: ""
tls_insecure_skip_verify: false
tls_min_version: VersionTLS12
sse:
  type: SSE-S3
  kms_key_id: ""
  kms_encryption_context: ""
`

func TestConfigTempoYAML(t *testing.T) {
	var cfg Config
	cfg.RegisterFlagsAndApplyDefaults("storage.trace", flag.NewFlagSet("t", flag.PanicOnError))
	dec := yaml.NewDecoder(strings.NewReader(tempoS3))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&cfg))
	require.NoError(t, cfg.Validate())
	require.Equal(t, "traces", cfg.Bucket)
	require.Equal(t, "shh", cfg.SecretKey.String())
	require.Equal(t, 500*time.Millisecond, cfg.HedgeRequestsAt)
	require.Equal(t, 3, cfg.HedgeRequestsUpTo)
	require.Equal(t, uint64(10<<20), cfg.PartSize)
	require.Equal(t, "VersionTLS12", cfg.MinVersion)
	require.Equal(t, SSES3, cfg.SSE.Type)

	out, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	require.NotContains(t, string(out), "shh", "secrets are masked when the config is shown")
	require.NotContains(t, cfg.String(), "shh")
}

func TestConfigFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlagsAndApplyDefaults("storage.trace", fs)
	require.NoError(t, fs.Parse([]string{"-storage.trace.s3.bucket=b", "-storage.trace.s3.endpoint=e:9000", "-storage.trace.s3.hedge_requests_at=1s"}))
	require.NoError(t, cfg.Validate())
	require.Equal(t, time.Second, cfg.HedgeRequestsAt)
	require.Equal(t, 10, cfg.RetryMaxAttempts)
	require.Equal(t, uint64(defaultPartSize), cfg.PartSize)
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		var cfg Config
		cfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("t", flag.PanicOnError))
		cfg.Bucket, cfg.Endpoint = "b", "e"
		return cfg
	}
	base := valid()
	require.NoError(t, base.Validate())
	for name, mutate := range map[string]func(*Config){
		"no bucket":          func(c *Config) { c.Bucket = "" },
		"no endpoint":        func(c *Config) { c.Endpoint = "" },
		"bad prefix":         func(c *Config) { c.Prefix = "a/../b" },
		"key without secret": func(c *Config) { c.AccessKey = "a" },
		"tiny part":          func(c *Config) { c.PartSize = 1 << 20 },
		"negative hedge":     func(c *Config) { c.HedgeRequestsAt = -time.Second },
		"hedge up to 0":      func(c *Config) { c.HedgeRequestsAt, c.HedgeRequestsUpTo = time.Second, 0 },
		"no attempts":        func(c *Config) { c.RetryMaxAttempts = 0 },
		"backoff inverted":   func(c *Config) { c.RetryBackoffInitial, c.RetryBackoffMax = time.Second, time.Millisecond },
		"lookup type":        func(c *Config) { c.BucketLookupType = 3 },
		"sse type":           func(c *Config) { c.SSE.Type = "rot13" },
		"kms without key":    func(c *Config) { c.SSE.Type = SSEKMS },
		"ssec short key":     func(c *Config) { c.SSE.Type = SSEC },
	} {
		cfg := valid()
		mutate(&cfg)
		require.Error(t, cfg.Validate(), name)
	}
}

func TestParseContentRange(t *testing.T) {
	s, e, total, err := parseContentRange("bytes 2-6/10")
	require.NoError(t, err)
	require.Equal(t, [3]int64{2, 6, 10}, [3]int64{s, e, total})
	_, _, total, err = parseContentRange("bytes 0-0/*")
	require.NoError(t, err)
	require.Equal(t, int64(-1), total)
	for _, bad := range []string{"", "bytes", "bytes 1-2", "items 1-2/3", "bytes 5-2/10", "bytes 1-10/10", "bytes a-b/c", "bytes -1-2/3"} {
		_, _, _, err := parseContentRange(bad)
		require.Error(t, err, bad)
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, seed := range []string{"bytes 2-6/10", "bytes 0-0/*", "bytes 1-10/10", "bytes -1-2/3", "", "bytes 9223372036854775807-9223372036854775807/*"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		start, end, total, err := parseContentRange(v)
		if err != nil {
			return
		}
		if start < 0 || end < start || (total >= 0 && end >= total) {
			t.Fatalf("%q parsed to inconsistent %d-%d/%d", v, start, end, total)
		}
	})
}
