package compactor

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/go-kit/log/level"
	"github.com/google/uuid"

	"github.com/rubatodb/rubato/pkg/block"
)

// cleanPartialBlocks deletes tenant t's partial blocks: directories the
// poller found with neither meta.json nor meta.compacted.json (an upload
// that stopped before its meta.json) whose objects are all older than
// partial_block_grace. See doc.go for why this never races an upload.
func (c *Compactor) cleanPartialBlocks(ctx context.Context, t string) error {
	grace := c.cfg.Compaction.PartialBlockGrace
	if grace <= 0 {
		return nil
	}
	// The output directories of the jobs planned now are never the
	// janitor's: with several compactors, another one may be retrying such
	// a job under its derived ID right now (doc.go, Partial blocks).
	planned := map[uuid.UUID]bool{}
	for _, job := range Plan(c.poller.Metas(t), c.cfg.Compaction.planConfig(), c.now()) {
		planned[OutputID(job)] = true
	}
	var errs []error
	for _, id := range c.poller.Incomplete(t) {
		if ctx.Err() != nil {
			break
		}
		if planned[id] {
			continue
		}
		deleted, err := c.deleteIfPartial(ctx, t, id, grace)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if deleted > 0 {
			c.metrics.partialDeleted.Inc()
			level.Info(c.logger).Log("msg", "deleted partial block left by an unfinished upload", "tenant", t, "block", id, "objects", deleted, "grace", grace)
		}
	}
	return errors.Join(errs...)
}

// partialObjects lists a block directory and returns its object keys if it
// is a partial block older than the grace period, or nil.
func (c *Compactor) partialObjects(ctx context.Context, t string, id uuid.UUID, grace time.Duration) ([]string, error) {
	objs, err := c.store.ListObjects(ctx, block.BlockDir(t, id)+"/")
	if err != nil {
		return nil, fmt.Errorf("janitor: list block %s/%s: %w", t, id, err)
	}
	cutoff := c.now().Add(-grace)
	keys := make([]string, 0, len(objs))
	for _, o := range objs {
		switch path.Base(o.Key) {
		case block.MetaName, block.CompactedMetaName:
			return nil, nil // a block, live or compacted: never the janitor's
		}
		if !o.LastModified.Before(cutoff) {
			return nil, nil // written within the grace period: maybe being uploaded
		}
		keys = append(keys, o.Key)
	}
	return keys, nil
}

// deleteIfPartial deletes the block's objects if it is partial and old, as
// found by two listings, the second just before the deletions; it returns
// how many objects it deleted.
func (c *Compactor) deleteIfPartial(ctx context.Context, t string, id uuid.UUID, grace time.Duration) (int, error) {
	keys, err := c.partialObjects(ctx, t, id, grace)
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	if c.beforeRecheck != nil {
		c.beforeRecheck(t, id)
	}
	// Check again right before deleting: an upload retried since the first
	// listing has refreshed the objects' times (every attempt puts every
	// object) or put meta.json, and the block is left alone.
	keys, err = c.partialObjects(ctx, t, id, grace)
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	for i, k := range keys {
		if err := c.store.Delete(ctx, k); err != nil {
			return i, fmt.Errorf("janitor: delete partial block %s/%s: %w", t, id, err)
		}
	}
	return len(keys), nil
}
