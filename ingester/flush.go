package ingester

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-kit/log/level"
	"github.com/google/uuid"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
)

// scheduleFlushes starts uploads of complete blocks that are due, at most
// ConcurrentFlushes at a time. A failed upload is retried with exponential
// backoff for as long as the ingester runs: the block and its WAL data stay.
func (ing *Ingester) scheduleFlushes(ctx context.Context) {
	now := ing.now()
	pending := 0
	for _, inst := range ing.instanceList() {
		inst.mu.Lock()
		var due []*completeBlock
		for _, cb := range inst.complete {
			if !cb.flushedAt.IsZero() {
				continue
			}
			pending++
			if cb.flushing || now.Before(cb.nextTry) {
				continue
			}
			cb.flushing = true
			due = append(due, cb)
		}
		inst.mu.Unlock()
		for _, cb := range due {
			select {
			case ing.flushSem <- struct{}{}:
			case <-ctx.Done():
				inst.mu.Lock()
				cb.flushing = false
				inst.mu.Unlock()
				return
			}
			ing.flushWG.Add(1)
			go func(inst *instance, cb *completeBlock) {
				defer ing.flushWG.Done()
				defer func() { <-ing.flushSem }()
				ing.flushBlock(ctx, inst, cb)
			}(inst, cb)
		}
	}
	ing.metrics.pendingFlushes.Set(float64(pending))
}

func (ing *Ingester) flushBlock(ctx context.Context, inst *instance, cb *completeBlock) {
	start := time.Now()
	inst.mu.RLock()
	attempt := cb.attempts
	inst.mu.RUnlock()
	opCtx, cancel := context.WithTimeout(ctx, ing.cfg.FlushOpTimeout)
	err := ing.uploadAttempt(opCtx, cb.meta, attempt)
	cancel()
	inst.mu.Lock()
	cb.flushing = false
	if err != nil {
		defer inst.mu.Unlock()
		cb.attempts++
		backoff := min(time.Duration(1<<min(cb.attempts, 20))*time.Second/2, ing.cfg.FlushRetryMaxBackoff)
		cb.nextTry = ing.now().Add(backoff)
		ing.metrics.failedFlushes.Inc()
		ing.lastFlushErr.Store(&flushError{err: err, at: ing.now()})
		level.Error(ing.logger).Log("msg", "flush block failed; will retry", "tenant", inst.tenant, "block", cb.meta.BlockID, "attempt", cb.attempts, "retry_in", backoff, "err", err)
		return
	}
	cb.flushedAt = ing.now()
	released := cb.released
	cb.released = nil
	inst.mu.Unlock()
	ing.lastFlushErr.Store(nil)
	ing.metrics.blocksFlushed.Inc()
	ing.metrics.flushDuration.Observe(time.Since(start).Seconds())
	level.Info(ing.logger).Log("msg", "block flushed", "tenant", inst.tenant, "block", cb.meta.BlockID, "duration", time.Since(start))
	// The block is in the backend: the replicas holding its replicated
	// fragments may forget them (held.go).
	ing.releaseOnReplicas(ctx, inst.tenant, released)
}

// retryNamespace derives the backend block IDs of upload retries.
var retryNamespace = uuid.MustParse("3b0f8e52-9d1c-4f6a-8e27-5c4d1a2b7e90")

// uploadID is the backend block ID of upload attempt n of a block: the
// block's own ID for the first attempt, a new ID derived from it for each
// retry. A retry never writes into a directory an earlier attempt wrote,
// so the compactor's janitor, which deletes a directory only once its
// newest object is older than partial_block_grace, can never delete an
// object an attempt still in progress has put (grace > flush_op_timeout).
func uploadID(id uuid.UUID, attempt int) uuid.UUID {
	if attempt == 0 {
		return id
	}
	var b [24]byte
	copy(b[:16], id[:])
	binary.BigEndian.PutUint64(b[16:], uint64(attempt))
	return uuid.NewSHA1(retryNamespace, b[:])
}

// uploadAttempt runs upload attempt n of a block. A retry first looks at
// the previous attempt: if its meta.json is in the backend (the upload
// succeeded but its answer was lost) the block is flushed; otherwise the
// previous attempt's objects are deleted (it has ended; nothing else
// writes there) and the block is uploaded under a new ID.
func (ing *Ingester) uploadAttempt(ctx context.Context, meta *block.Meta, attempt int) error {
	if attempt > 0 {
		prev := uploadID(meta.BlockID, attempt-1)
		in, err := blockInBackend(ctx, ing.store, meta.TenantID, prev, ing.cfg.FlushOpTimeout)
		if err != nil {
			return fmt.Errorf("check previous upload %s: %w", prev, err)
		}
		if in {
			return nil
		}
		if err := deleteObjects(ctx, ing.store, block.BlockDir(meta.TenantID, prev)+"/"); err != nil {
			level.Warn(ing.logger).Log("msg", "delete objects of a failed upload; the compactor will", "block", prev, "err", err)
		}
	}
	// Replay after a crash must know every ID this block may be under.
	if err := ing.marks.recordAttempt(meta.BlockID, attempt); err != nil {
		level.Warn(ing.logger).Log("msg", "recording upload attempt failed; a crash may upload the block twice", "block", meta.BlockID, "err", err)
	}
	return copyBlock(ctx, ing.local, ing.store, meta, uploadID(meta.BlockID, attempt))
}

func deleteObjects(ctx context.Context, be backend.Backend, dir string) error {
	objs, err := be.ListObjects(ctx, dir)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := be.Delete(ctx, o.Key); err != nil {
			return err
		}
	}
	return nil
}

// copyBlock copies a block between stores under block ID dstID, meta.json
// last, so the block becomes visible in dst only once it is whole. Every
// call puts every object.
func copyBlock(ctx context.Context, src, dst backend.Backend, meta *block.Meta, dstID uuid.UUID) error {
	metaKey := block.MetaKey(meta.TenantID, meta.BlockID)
	dir := strings.TrimSuffix(metaKey, block.MetaName)
	dstDir := block.BlockDir(meta.TenantID, dstID) + "/"
	keys, err := src.List(ctx, dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	if !slices.Contains(keys, metaKey) {
		return fmt.Errorf("block %s has no meta.json locally", meta.BlockID)
	}
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == metaKey || strings.HasSuffix(k, "/") })
	for _, k := range keys {
		if err := copyObject(ctx, src, dst, k, dstDir+strings.TrimPrefix(k, dir)); err != nil {
			return err
		}
	}
	if dstID == meta.BlockID {
		return copyObject(ctx, src, dst, metaKey, metaKey)
	}
	m := *meta
	m.BlockID = dstID
	data, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("meta of block %s: %w", dstID, err)
	}
	return dst.Put(ctx, block.MetaKey(meta.TenantID, dstID), bytes.NewReader(data), int64(len(data)))
}

func copyObject(ctx context.Context, src, dst backend.Backend, key, dstKey string) error {
	size, err := src.Size(ctx, key)
	if err != nil {
		return fmt.Errorf("size %s: %w", key, err)
	}
	rc, err := src.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	err = dst.Put(ctx, dstKey, rc, size)
	return errors.Join(err, rc.Close())
}

// dropOldBlocks deletes local copies of blocks flushed more than
// complete_block_timeout ago. By then queriers have found them in the
// backend.
func (ing *Ingester) dropOldBlocks(ctx context.Context) {
	cutoff := ing.now().Add(-ing.cfg.CompleteBlockTimeout)
	for _, inst := range ing.instanceList() {
		inst.mu.Lock()
		var drop []*completeBlock
		inst.complete = slices.DeleteFunc(inst.complete, func(cb *completeBlock) bool {
			old := !cb.flushedAt.IsZero() && cb.flushedAt.Before(cutoff)
			if old {
				drop = append(drop, cb)
			}
			return old
		})
		inst.mu.Unlock()
		for _, cb := range drop {
			if err := deleteBlock(ctx, ing.local, cb.meta); err != nil {
				level.Warn(ing.logger).Log("msg", "delete local block", "block", cb.meta.BlockID, "err", err)
			}
		}
	}
}

// deleteBlock removes meta.json first, so a half-deleted block is never
// visible.
func deleteBlock(ctx context.Context, be backend.Backend, meta *block.Meta) error {
	metaKey := block.MetaKey(meta.TenantID, meta.BlockID)
	if err := be.Delete(ctx, metaKey); err != nil {
		return err
	}
	keys, err := be.List(ctx, strings.TrimSuffix(metaKey, "meta.json"))
	if err != nil {
		return err
	}
	var errs []error
	for _, k := range keys {
		errs = append(errs, be.Delete(ctx, k))
	}
	return errors.Join(errs...)
}

type flushError struct {
	err error
	at  time.Time
}

// FlushStatus reports blocks waiting for the backend and, if the latest
// upload failed, why: what /ready shows while the object store is down.
func (ing *Ingester) FlushStatus() (pending int, lastErr error) {
	for _, inst := range ing.instanceList() {
		inst.mu.RLock()
		for _, cb := range inst.complete {
			if cb.flushedAt.IsZero() {
				pending++
			}
		}
		pending += len(inst.cutting)
		inst.mu.RUnlock()
	}
	if fe := ing.lastFlushErr.Load(); fe != nil {
		lastErr = fmt.Errorf("%s: %w", fe.at.UTC().Format(time.RFC3339), fe.err)
	}
	return pending, lastErr
}
