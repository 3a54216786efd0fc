package block

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBytesPerSpan pins the on-disk cost of realistic spans (default
// config) and logs the most expensive columns.
func TestBytesPerSpan(t *testing.T) {
	b := writeTestBlock(t, testConfig(t), 5000, false)
	ft, err := Open(b.be, b.meta, NewCache(64<<20)).footer(context.Background())
	require.NoError(t, err)
	perColumn := map[string]int64{}
	for _, rg := range ft.file.Metadata().RowGroups {
		for _, c := range rg.Columns {
			perColumn[strings.Join(c.MetaData.PathInSchema, ".")] += c.MetaData.TotalCompressedSize
		}
	}
	names := make([]string, 0, len(perColumn))
	for k := range perColumn {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return perColumn[names[i]] > perColumn[names[j]] })
	spans := float64(b.meta.TotalSpans)
	for _, k := range names[:12] {
		t.Logf("%-40s %6.2f B/span", k, float64(perColumn[k])/spans)
	}
	perSpan := float64(b.meta.Size) / spans
	t.Logf("data.parquet %.2f B/span (footer %.2f B/span), %d row groups", perSpan, float64(b.meta.FooterSize)/spans, b.meta.RowGroups)
	require.LessOrEqual(t, perSpan, 60.0)
	require.Greater(t, b.meta.RowGroups, 1)
}
