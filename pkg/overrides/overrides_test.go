package overrides

import (
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestYAMLLayouts(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      Limits
	}{
		{"defaults only", ``, Limits{IngestionRateLimitBytes: 15_000_000, IngestionBurstSizeBytes: 20_000_000,
			MaxLiveTracesBytes: DefaultMaxLiveTracesBytes, MaxBytesPerTrace: 5_000_000}},
		{"nested", `
defaults:
  ingestion:
    rate_limit_bytes: 1_000
    burst_size_bytes: 2000
    max_traces_per_user: 3
    max_live_traces_bytes: 5
    retry_after_on_resource_exhausted: 7s
  global:
    max_bytes_per_trace: 4`, Limits{IngestionRateLimitBytes: 1000, IngestionBurstSizeBytes: 2000, MaxTracesPerUser: 3,
			MaxLiveTracesBytes: 5, MaxBytesPerTrace: 4, RetryAfterOnResourceExhausted: 7 * time.Second}},
		{"legacy flat", `
ingestion_rate_limit_bytes: 10
ingestion_burst_size_bytes: 20
max_traces_per_user: 30
max_bytes_per_trace: 40
max_live_traces_bytes: 50
retry_after_on_resource_exhausted: 2s`, Limits{IngestionRateLimitBytes: 10, IngestionBurstSizeBytes: 20, MaxTracesPerUser: 30,
			MaxLiveTracesBytes: 50, MaxBytesPerTrace: 40, RetryAfterOnResourceExhausted: 2 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			c.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
			if tc.doc != "" {
				require.NoError(t, yaml.Unmarshal([]byte(tc.doc), &c))
			}
			require.Equal(t, tc.want, c.Defaults)
			require.NoError(t, c.Validate())
			require.Equal(t, tc.want, *New(c).For("t"))
		})
	}
}

func TestValidate(t *testing.T) {
	require.Error(t, (&Limits{IngestionRateLimitBytes: -1}).Validate())
	require.Error(t, (&Limits{MaxLiveTracesBytes: -1}).Validate())
	require.Error(t, (&Limits{RetryAfterOnResourceExhausted: -time.Second}).Validate())
	require.Error(t, (&Limits{IngestionRateLimitBytes: 10, IngestionBurstSizeBytes: 5}).Validate())
	require.NoError(t, (&Limits{}).Validate())
}
