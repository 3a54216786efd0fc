package overrides

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestYAMLLayouts(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      Limits
	}{
		{"defaults only", ``, Limits{15_000_000, 20_000_000, 10_000, 5_000_000, 0}},
		{"nested", `
defaults:
  ingestion:
    rate_limit_bytes: 1_000
    burst_size_bytes: 2000
    max_traces_per_user: 3
  global:
    max_bytes_per_trace: 4`, Limits{1000, 2000, 3, 4, 0}},
		{"legacy flat", `
ingestion_rate_limit_bytes: 10
ingestion_burst_size_bytes: 20
max_traces_per_user: 30
max_bytes_per_trace: 40`, Limits{10, 20, 30, 40, 0}},
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
	require.Error(t, (&Limits{IngestionRateLimitBytes: 10, IngestionBurstSizeBytes: 5}).Validate())
	require.NoError(t, (&Limits{}).Validate())
}
