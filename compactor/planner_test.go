package compactor_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/compactor"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/blocklist"
)

var planNow = time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)

func meta(n byte, end time.Time, lvl uint8, size int64, objs int) *block.Meta {
	id := uuid.UUID{n}
	return &block.Meta{Version: block.VersionV1, BlockID: id, TenantID: "t", EndTime: end, StartTime: end.Add(-time.Minute),
		CompactionLevel: lvl, Size: size, TotalObjects: objs}
}

func ids(jobs []compactor.Job) [][]byte {
	var out [][]byte
	for _, j := range jobs {
		var b []byte
		for _, m := range j.Inputs {
			b = append(b, m.BlockID[0])
		}
		out = append(out, b)
	}
	return out
}

func TestPlan(t *testing.T) {
	cfg := compactor.PlanConfig{Window: time.Hour, MaxBlockBytes: 1000, MaxObjects: 100, MinInputBlocks: 2, MaxInputBlocks: 3}
	cur := planNow.Add(-10 * time.Minute) // current window
	old := planNow.Add(-5 * time.Hour)    // closed window
	older := planNow.Add(-30 * time.Hour) // another closed window
	for _, tc := range []struct {
		name   string
		metas  []*block.Meta
		want   [][]byte
		levels []uint8
	}{
		{"nothing", nil, nil, nil},
		{"one block", []*block.Meta{meta(1, cur, 0, 10, 1)}, nil, nil},
		{"two of one window", []*block.Meta{meta(1, cur, 0, 10, 1), meta(2, cur, 0, 20, 1)}, [][]byte{{1, 2}}, []uint8{1}},
		{"windows never mix", []*block.Meta{meta(1, cur, 0, 10, 1), meta(2, old, 0, 20, 1)}, nil, nil},
		{"levels apart in the active window", []*block.Meta{meta(1, cur, 0, 10, 1), meta(2, cur, 1, 20, 1)}, nil, nil},
		{"levels together in a closed window", []*block.Meta{meta(1, old, 0, 10, 1), meta(2, old, 3, 20, 1)}, [][]byte{{1, 2}}, []uint8{4}},
		{"max inputs, smallest first", []*block.Meta{
			meta(1, cur, 0, 50, 1), meta(2, cur, 0, 10, 1), meta(3, cur, 0, 40, 1), meta(4, cur, 0, 20, 1), meta(5, cur, 0, 30, 1)},
			[][]byte{{2, 4, 5}, {3, 1}}, []uint8{1, 1}},
		{"byte bound", []*block.Meta{meta(1, cur, 0, 600, 1), meta(2, cur, 0, 500, 1), meta(3, cur, 0, 300, 1)},
			[][]byte{{3, 2}}, []uint8{1}},
		{"object bound", []*block.Meta{meta(1, cur, 0, 1, 60), meta(2, cur, 0, 2, 50), meta(3, cur, 0, 3, 30)},
			[][]byte{{2, 3}}, []uint8{1}},
		{"oversized block alone", []*block.Meta{meta(1, cur, 0, 2000, 1), meta(2, cur, 0, 10, 1)}, nil, nil},
		{"oldest window first", []*block.Meta{
			meta(1, cur, 0, 1, 1), meta(2, cur, 0, 1, 1), meta(3, older, 0, 1, 1), meta(4, older, 2, 1, 1)},
			[][]byte{{3, 4}, {1, 2}}, []uint8{3, 1}},
		{"level 255 stays 255", []*block.Meta{meta(1, old, 255, 1, 1), meta(2, old, 255, 2, 1)}, [][]byte{{1, 2}}, []uint8{255}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jobs := compactor.Plan(tc.metas, cfg, planNow)
			require.Equal(t, tc.want, ids(jobs))
			for i, j := range jobs {
				require.Equal(t, tc.levels[i], j.Level)
				require.Equal(t, "t", j.Tenant)
			}
			// Pure: the same input gives the same plan.
			require.Equal(t, ids(jobs), ids(compactor.Plan(tc.metas, cfg, planNow)))
		})
	}
}

func TestPlanTenantsApart(t *testing.T) {
	a, b := meta(1, planNow, 0, 1, 1), meta(2, planNow, 0, 1, 1)
	b.TenantID = "u"
	cfg := compactor.PlanConfig{Window: time.Hour, MaxBlockBytes: 1000, MaxObjects: 100, MinInputBlocks: 2, MaxInputBlocks: 3}
	require.Empty(t, compactor.Plan([]*block.Meta{a, b}, cfg, planNow))
}

func TestRetentionPlan(t *testing.T) {
	live := []*block.Meta{meta(1, planNow.Add(-25*time.Hour), 0, 1, 1), meta(2, planNow.Add(-23*time.Hour), 0, 1, 1)}
	compacted := []*blocklist.CompactedMeta{
		{Meta: *meta(3, planNow, 0, 1, 1), CompactedTime: planNow.Add(-2 * time.Hour)},
		{Meta: *meta(4, planNow, 0, 1, 1), CompactedTime: planNow.Add(-30 * time.Minute)},
	}
	expire, remove := compactor.RetentionPlan(live, compacted, 24*time.Hour, time.Hour, planNow)
	require.Equal(t, []*block.Meta{live[0]}, expire)
	require.Equal(t, []*blocklist.CompactedMeta{compacted[0]}, remove)
	expire, _ = compactor.RetentionPlan(live, nil, 0, time.Hour, planNow)
	require.Empty(t, expire, "retention 0 keeps blocks forever")
}
