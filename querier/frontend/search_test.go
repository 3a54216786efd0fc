package frontend

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/search"
	"github.com/rubatodb/rubato/pkg/tenant"
	"github.com/rubatodb/rubato/querier"
)

// TestSearchJobMessages: the frontend's plan becomes one ingesters job
// naming the ingester-cut blocks the block jobs read (the queriers' ingesters
// leave their copies out) and block jobs carrying their blocks' metas.
func TestSearchJobMessages(t *testing.T) {
	meta := func(level uint8) *block.Meta {
		return &block.Meta{Version: block.VersionV2, BlockID: uuid.New(), TenantID: tenant.SingleTenant, StartTime: time.Unix(100, 0), EndTime: time.Unix(200, 0),
			MinID: make([]byte, 16), MaxID: make([]byte, 16), Size: 10, FooterSize: 9, TotalObjects: 1, RowGroups: 1, BloomShardCount: 1, SearchIndexSize: 1, CompactionLevel: level}
	}
	metas := []*block.Meta{meta(0), meta(1), meta(0)}
	byID := map[uuid.UUID]*block.Meta{}
	for _, m := range metas {
		byID[m.BlockID] = m
	}
	jobs := search.Plan(tenant.SingleTenant, &rubatopb.SearchRequest{Query: "{}", Limit: 5}, []string{ingestersJob}, metas, search.ShardConfig{TargetBytesPerJob: 1})
	require.Len(t, jobs, 4)
	var read []uuid.UUID
	for _, j := range jobs {
		sj, kind, err := searchJobMessage(j, byID)
		require.NoError(t, err)
		require.Equal(t, "{}", sj.Request.Query)
		if j.Ingester != "" {
			require.Equal(t, "search_ingesters", kind)
			require.True(t, sj.Ingesters)
			skip, err := search.ParseBlockIDs(sj.SkipBlocks)
			require.NoError(t, err)
			require.ElementsMatch(t, []uuid.UUID{metas[0].BlockID, metas[2].BlockID}, skip)
			continue
		}
		require.Equal(t, "search_blocks", kind)
		require.Empty(t, sj.SkipBlocks)
		ms, err := querier.ParseBlockRefs(tenant.SingleTenant, sj.Blocks)
		require.NoError(t, err)
		for _, m := range ms {
			read = append(read, m.BlockID)
		}
	}
	require.ElementsMatch(t, []uuid.UUID{metas[0].BlockID, metas[1].BlockID, metas[2].BlockID}, read, "every block read by a block job")
}
