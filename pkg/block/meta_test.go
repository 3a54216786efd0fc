package block

import (
	"bytes"
	"encoding/json"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func validMeta() *Meta {
	return &Meta{
		Version:         VersionV1,
		BlockID:         uuid.MustParse("0d3c4a6b-2f58-4a8e-9a3e-6a1b2c3d4e5f"),
		TenantID:        "t",
		MinID:           HexID(bytes.Repeat([]byte{1}, 16)),
		MaxID:           HexID(bytes.Repeat([]byte{2}, 16)),
		StartTime:       time.Unix(100, 5).UTC(),
		EndTime:         time.Unix(200, 0).UTC(),
		TotalObjects:    10,
		TotalSpans:      100,
		Size:            5000,
		FooterSize:      700,
		RowGroups:       2,
		CompactionLevel: 1,
		BloomShardCount: 1,
		CreatedAt:       time.Unix(300, 0).UTC(),
	}
}

func TestMetaRoundTrip(t *testing.T) {
	m := validMeta()
	data, err := m.Marshal()
	require.NoError(t, err)
	require.Contains(t, string(data), `"minID": "01010101010101010101010101010101"`)
	require.Contains(t, string(data), `"bloomShardCount": 1`)
	got, err := ParseMeta(data)
	require.NoError(t, err)
	require.Equal(t, m, got)
}

func TestParseMetaRejects(t *testing.T) {
	cases := map[string]func(m *Meta){
		"version":     func(m *Meta) { m.Version = "v9" },
		"v2 no index": func(m *Meta) { m.Version = VersionV2 },
		"v1 index":    func(m *Meta) { m.SearchIndexSize = 10 },
		"nil id":      func(m *Meta) { m.BlockID = uuid.Nil },
		"tenant":      func(m *Meta) { m.TenantID = "" },
		"short min":   func(m *Meta) { m.MinID = m.MinID[:8] },
		"min > max":   func(m *Meta) { m.MinID, m.MaxID = m.MaxID, m.MinID },
		"time":        func(m *Meta) { m.EndTime = m.StartTime.Add(-1) },
		"objects":     func(m *Meta) { m.TotalObjects = 0 },
		"spans":       func(m *Meta) { m.TotalSpans = -1 },
		"size":        func(m *Meta) { m.Size = 0 },
		"footer":      func(m *Meta) { m.FooterSize = m.Size + 1 },
		"row groups":  func(m *Meta) { m.RowGroups = 0 },
		"shards zero": func(m *Meta) { m.BloomShardCount = 0 },
		"shards huge": func(m *Meta) { m.BloomShardCount = MaxBloomShards + 1 },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			m := validMeta()
			mutate(m)
			data, err := json.Marshal(m)
			require.NoError(t, err)
			_, err = ParseMeta(data)
			require.ErrorIs(t, err, ErrInvalidMeta)
		})
	}
	for name, data := range map[string]string{
		"not json": "{",
		"bad hex":  `{"version":"v1","minID":"zz"}`,
		"huge":     `"` + strings.Repeat("a", maxMetaSize) + `"`,
	} {
		_, err := ParseMeta([]byte(data))
		require.ErrorIs(t, err, ErrInvalidMeta, name)
	}
}

func TestKeys(t *testing.T) {
	id := uuid.MustParse("0d3c4a6b-2f58-4a8e-9a3e-6a1b2c3d4e5f")
	require.Equal(t, "t/0d3c4a6b-2f58-4a8e-9a3e-6a1b2c3d4e5f/meta.json", MetaKey("t", id))
	require.Equal(t, "t/0d3c4a6b-2f58-4a8e-9a3e-6a1b2c3d4e5f/meta.compacted.json", CompactedMetaKey("t", id))
	require.Equal(t, "t/0d3c4a6b-2f58-4a8e-9a3e-6a1b2c3d4e5f/data.parquet", DataKey("t", id))
	require.Equal(t, "t/0d3c4a6b-2f58-4a8e-9a3e-6a1b2c3d4e5f/bloom-12", BloomKey("t", id, 12))
}

func TestConfig(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	cfg.RegisterFlagsAndApplyDefaults("block.", fs)
	require.Equal(t, DefaultBloomFP, cfg.BloomFP)
	require.Equal(t, DefaultBloomShardSizeBytes, cfg.BloomShardSizeBytes)
	require.Equal(t, DefaultRowGroupSizeBytes, cfg.RowGroupSizeBytes)
	require.NoError(t, fs.Parse([]string{"-block.bloom-filter-false-positive=0.05"}))
	require.Equal(t, 0.05, cfg.BloomFP)
	require.NoError(t, cfg.Validate())
	for _, mutate := range []func(*Config){
		func(c *Config) { c.BloomFP = 1 },
		func(c *Config) { c.BloomShardSizeBytes = 1 },
		func(c *Config) { c.RowGroupSizeBytes = 0 },
		func(c *Config) { c.PageSizeBytes = 0 },
	} {
		c := cfg
		mutate(&c)
		require.Error(t, c.Validate())
	}
}

func FuzzParseMeta(f *testing.F) {
	good, err := validMeta().Marshal()
	require.NoError(f, err)
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":"v1","minID":"00","maxID":"ff"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMeta(data)
		if err != nil {
			return
		}
		// A parsed meta re-marshals and parses to the same value.
		again, err := m.Marshal()
		require.NoError(t, err)
		m2, err := ParseMeta(again)
		require.NoError(t, err)
		require.Equal(t, m.BlockID, m2.BlockID)
		require.Equal(t, m.MinID, m2.MinID)
	})
}
