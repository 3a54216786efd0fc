package compactor

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/blocklist"
)

// PlanConfig bounds the jobs Plan makes.
type PlanConfig struct {
	Window         time.Duration
	MaxBlockBytes  uint64
	MaxObjects     int
	MinInputBlocks int
	MaxInputBlocks int
}

func (c *CompactionConfig) planConfig() PlanConfig {
	return PlanConfig{
		Window: c.CompactionWindow, MaxBlockBytes: c.MaxBlockBytes, MaxObjects: c.MaxCompactionObjects,
		MinInputBlocks: c.MinInputBlocks, MaxInputBlocks: c.MaxInputBlocks,
	}
}

// Job is one compaction: merge Inputs (all of one tenant) into one block at
// compaction level Level.
type Job struct {
	Tenant string
	// Window is the start of the compaction window the inputs' newest
	// spans fall in.
	Window time.Time
	// Level is the output's compaction level: one more than the highest
	// input level (at most 255).
	Level  uint8
	Inputs []*block.Meta
}

// Plan turns one tenant's live blocks into compaction jobs. It is a pure
// function: the same metas, config and time give the same jobs.
//
// Blocks are grouped by the window their EndTime falls in. In the two most
// recent windows (still receiving data) blocks are also grouped by
// compaction level, so a big merged block is not rewritten for every small
// new one; in older windows every level merges together, so a closed window
// converges to few blocks. Inside a group blocks are taken smallest first;
// a job takes at most MaxInputBlocks blocks whose summed Size and
// TotalObjects stay within MaxBlockBytes and MaxObjects, and is made only
// with at least MinInputBlocks inputs. Jobs are disjoint, ordered oldest
// window first.
func Plan(metas []*block.Meta, cfg PlanConfig, now time.Time) []Job {
	if cfg.Window <= 0 || cfg.MinInputBlocks < 2 || cfg.MaxInputBlocks < cfg.MinInputBlocks {
		return nil
	}
	type key struct {
		tenant string
		window int64
		level  int
	}
	active := windowOf(now, cfg.Window) - 1
	groups := map[key][]*block.Meta{}
	for _, m := range metas {
		k := key{tenant: m.TenantID, window: windowOf(m.EndTime, cfg.Window), level: -1}
		if k.window >= active {
			k.level = int(m.CompactionLevel)
		}
		groups[k] = append(groups[k], m)
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(strings.Compare(a.tenant, b.tenant), cmp.Compare(a.window, b.window), cmp.Compare(a.level, b.level))
	})
	var jobs []Job
	for _, k := range keys {
		g := groups[k]
		slices.SortFunc(g, func(a, b *block.Meta) int {
			return cmp.Or(cmp.Compare(a.Size, b.Size), strings.Compare(a.BlockID.String(), b.BlockID.String()))
		})
		for i := 0; i < len(g); {
			bytes, objs := uint64(g[i].Size), g[i].TotalObjects
			j := i + 1
			for j < len(g) && j-i < cfg.MaxInputBlocks &&
				bytes+uint64(g[j].Size) <= cfg.MaxBlockBytes && objs+g[j].TotalObjects <= cfg.MaxObjects {
				bytes += uint64(g[j].Size)
				objs += g[j].TotalObjects
				j++
			}
			if j-i < cfg.MinInputBlocks {
				i++
				continue
			}
			inputs := slices.Clone(g[i:j])
			var lvl uint8
			for _, m := range inputs {
				lvl = max(lvl, m.CompactionLevel)
			}
			if lvl < 255 {
				lvl++
			}
			jobs = append(jobs, Job{Tenant: k.tenant, Window: time.Unix(0, k.window*int64(cfg.Window)).UTC(), Level: lvl, Inputs: inputs})
			i = j
		}
	}
	return jobs
}

// windowOf returns the index of the window holding t (floor division, so
// times before 1970 land in negative windows).
func windowOf(t time.Time, w time.Duration) int64 {
	ns, d := t.UnixNano(), int64(w)
	q := ns / d
	if ns%d < 0 {
		q--
	}
	return q
}

// RetentionPlan picks, among one tenant's blocks, the live blocks to mark
// compacted because their newest span is older than retention (0 keeps
// blocks forever), and the compacted blocks to delete because they were
// compacted more than compactedRetention ago. Pure, like Plan.
func RetentionPlan(live []*block.Meta, compacted []*blocklist.CompactedMeta, retention, compactedRetention time.Duration, now time.Time) (expire []*block.Meta, remove []*blocklist.CompactedMeta) {
	if retention > 0 {
		cutoff := now.Add(-retention)
		for _, m := range live {
			if m.EndTime.Before(cutoff) {
				expire = append(expire, m)
			}
		}
	}
	cutoff := now.Add(-compactedRetention)
	for _, c := range compacted {
		if c.CompactedTime.Before(cutoff) {
			remove = append(remove, c)
		}
	}
	return expire, remove
}
