package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rubatodb/rubato/pkg/internal/vfs"
)

// flushThreshold bounds how much framed data waits in memory for the next
// group-commit leader under the always policy before it is written anyway.
const flushThreshold = 1 << 20

// maxRetainedBuffer: a write buffer grown past this by a huge record is
// dropped after use instead of being kept for the WAL's lifetime.
const maxRetainedBuffer = 4 << 20

// WAL is a write-ahead log of opaque records in numbered segment files.
// All methods are safe for concurrent use, except that Replay must not run
// concurrently with Truncate (see doc.go).
type WAL struct {
	cfg    Config
	fsys   vfs.FS
	logger log.Logger
	m      *metrics

	// preexisting are the segments found by Open, ascending: what Replay
	// reads. Never the active segment.
	preexisting []uint64

	// active mirrors seg for lock-free readers.
	active atomic.Uint64

	// mu guards the write state. Lock order: mu, then fileMu, then syncMu.
	mu      sync.Mutex
	f       vfs.File // active segment; nil once closed or after a failed rotation
	seg     uint64   // active segment number
	size    int64    // bytes in the active segment, buf included
	buf     []byte   // framed records not yet written to f
	seq     uint64   // records framed so far; a record's seq is its position
	closing bool     // Close has begun: no new appends
	err     error    // sticky: a write, fsync or rotation failed

	// fileMu keeps f open while a group-commit leader fsyncs it without mu:
	// fsyncs hold it shared, whoever closes f (rotation, Close) exclusive.
	fileMu sync.RWMutex

	// syncMu guards the group-commit state; syncCond is signalled on it
	// whenever synced, syncing or syncErr changes.
	syncMu   sync.Mutex
	syncCond *sync.Cond
	synced   uint64 // every record with seq <= synced is durable
	syncing  bool   // a leader is writing and fsyncing for everyone
	syncErr  error

	// readers serves ReadAt.
	readers readers

	// Interval syncer, only under SyncInterval.
	stop chan struct{}
	done chan struct{}
}

// Open opens the WAL in cfg.Dir, creating the directory if needed. It never
// appends to an existing segment: it starts a new one numbered after the
// highest segment present (1 in an empty directory). The segments already
// there are left for Replay. Under the interval policy Open starts a
// goroutine that Close stops.
func Open(cfg Config, logger log.Logger, reg prometheus.Registerer) (*WAL, error) {
	return open(cfg, vfs.OS{}, logger, reg, nil)
}

// OpenFS is Open on the file system fsys instead of the operating system's:
// tests run the WAL on crashfs to simulate power loss.
func OpenFS(cfg Config, fsys vfs.FS, logger log.Logger, reg prometheus.Registerer) (*WAL, error) {
	return open(cfg, fsys, logger, reg, nil)
}

// tickerFunc makes the interval syncer's ticker; tests replace
// time.NewTicker to drive the syncer tick by tick.
type tickerFunc func(d time.Duration) (c <-chan time.Time, stop func())

func realTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

func open(cfg Config, fsys vfs.FS, logger log.Logger, reg prometheus.Registerer, ticker tickerFunc) (*WAL, error) {
	if ticker == nil {
		ticker = realTicker
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = log.NewNopLogger()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("wal: register metrics: %w", err)
	}
	// Make the directory, and any parent created with it, durable in its
	// parent: otherwise a power cut could lose the whole directory with
	// every fsynced segment in it.
	if err := vfs.MkdirAllDurable(fsys, cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("wal: create dir: %w", err)
	}
	// Also when the directory already existed: whoever made it (an init
	// container's mkdir) may not have fsynced its parent.
	if err := syncDir(fsys, filepath.Dir(filepath.Clean(cfg.Dir))); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	segs, err := listSegments(fsys, cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	next := uint64(1)
	if len(segs) > 0 {
		next = segs[len(segs)-1] + 1
	}
	f, err := createSegment(fsys, cfg.Dir, next)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	w := &WAL{
		cfg:         cfg,
		fsys:        fsys,
		logger:      logger,
		m:           m,
		preexisting: segs,
		f:           f,
		seg:         next,
		size:        SegmentHeaderSize,
	}
	w.syncCond = sync.NewCond(&w.syncMu)
	w.active.Store(next)
	m.segments.Set(float64(len(segs) + 1))
	if cfg.SyncPolicy == SyncInterval {
		w.stop = make(chan struct{})
		w.done = make(chan struct{})
		tick, stop := ticker(cfg.SyncInterval)
		go w.runSyncer(tick, stop)
	}
	level.Info(logger).Log("msg", "wal opened", "dir", cfg.Dir, "segment", next, "existing_segments", len(segs), "sync_policy", cfg.SyncPolicy)
	return w, nil
}

// ActiveSegment returns the number of the segment appends currently go to.
func (w *WAL) ActiveSegment() uint64 { return w.active.Load() }

// Append writes one record and returns the number of the segment it is in.
// When Append returns nil the record is acknowledged as doc.go describes for
// the configured policy. A record is never split across segments. After a
// write or fsync error every later Append fails too: the WAL must be
// reopened (and replayed) to be used again.
func (w *WAL) Append(rec []byte) (uint64, error) {
	p, err := w.AppendPos(rec)
	return p.Segment, err
}

// AppendPos is Append that also returns where the record's payload starts,
// so the caller can read it back with ReadAt instead of keeping a copy.
func (w *WAL) AppendPos(rec []byte) (Position, error) {
	if len(rec) > MaxRecordSize {
		return Position{}, fmt.Errorf("wal: append %d bytes: %w", len(rec), ErrRecordTooLarge)
	}
	w.mu.Lock()
	if err := w.prepareLocked(frameSize(len(rec))); err != nil {
		w.mu.Unlock()
		return Position{}, err
	}
	pos := Position{Segment: w.seg, Offset: w.size + RecordHeaderSize}
	w.buf = AppendRecord(w.buf, rec)
	w.size += frameSize(len(rec))
	w.seq++
	seq := w.seq
	err := w.afterAppendLocked()
	w.mu.Unlock()
	if err != nil {
		return Position{}, err
	}
	w.m.appends.Inc()
	w.m.appendBytes.Add(float64(len(rec)))
	if w.cfg.SyncPolicy == SyncAlways {
		if err := w.waitDurable(seq); err != nil {
			return Position{}, err
		}
	}
	return pos, nil
}

// AppendBatch writes recs as consecutive records in one segment, with one
// lock acquisition and at most one wait for fsync, and returns that
// segment. Like Append it is acknowledged only when it returns nil. A crash
// before that may keep any prefix of the batch.
func (w *WAL) AppendBatch(recs [][]byte) (uint64, error) {
	var total int64
	for _, rec := range recs {
		if len(rec) > MaxRecordSize {
			return 0, fmt.Errorf("wal: append %d bytes: %w", len(rec), ErrRecordTooLarge)
		}
		total += frameSize(len(rec))
	}
	w.mu.Lock()
	if err := w.prepareLocked(total); err != nil {
		w.mu.Unlock()
		return 0, err
	}
	var n int
	for _, rec := range recs {
		w.buf = AppendRecord(w.buf, rec)
		n += len(rec)
	}
	w.size += total
	w.seq += uint64(len(recs))
	seq, seg := w.seq, w.seg
	err := w.afterAppendLocked()
	w.mu.Unlock()
	if err != nil {
		return 0, err
	}
	w.m.appends.Add(float64(len(recs)))
	w.m.appendBytes.Add(float64(n))
	if w.cfg.SyncPolicy == SyncAlways {
		if err := w.waitDurable(seq); err != nil {
			return 0, err
		}
	}
	return seg, nil
}

// prepareLocked checks that appends are allowed and rotates if need more
// bytes would take a non-empty active segment past SegmentSize.
func (w *WAL) prepareLocked(need int64) error {
	if w.closing {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	if w.size > SegmentHeaderSize && w.size+need > w.cfg.SegmentSize {
		if _, err := w.rotateLocked(); err != nil {
			return err
		}
	}
	return nil
}

// afterAppendLocked hands framed records to the kernel unless they are
// left for the group-commit leader.
func (w *WAL) afterAppendLocked() error {
	if w.cfg.SyncPolicy == SyncAlways && len(w.buf) < flushThreshold {
		return nil
	}
	return w.flushLocked()
}

// flushLocked writes buf to the active segment.
func (w *WAL) flushLocked() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.f.Write(w.buf); err != nil {
		return w.failLocked(fmt.Errorf("write segment %d: %w", w.seg, err))
	}
	if cap(w.buf) > maxRetainedBuffer {
		w.buf = nil
	} else {
		w.buf = w.buf[:0]
	}
	return nil
}

// failLocked makes err sticky. After a failed write the segment may end in
// a partial record; after a failed fsync the kernel may have dropped dirty
// pages. Either way nothing appended later could be trusted, so the WAL
// refuses further appends; reopening replays (and repairs) what is on disk.
func (w *WAL) failLocked(err error) error {
	if w.err == nil {
		w.err = fmt.Errorf("wal: %w", err)
		w.m.failures.Inc()
		level.Error(w.logger).Log("msg", "wal failed; refusing appends until reopened", "segment", w.seg, "err", err)
	}
	return w.err
}

// fsync fsyncs f and records metrics. f must be kept open by the caller.
func (w *WAL) fsync(f vfs.File) error {
	start := time.Now()
	err := f.Sync()
	w.m.fsyncDuration.Observe(time.Since(start).Seconds())
	w.m.fsyncs.Inc()
	return err
}

// waitDurable returns once record seq is durable, becoming the group-commit
// leader if no one else is: the leader writes everything framed so far and
// fsyncs once for every appender that got in before it.
func (w *WAL) waitDurable(seq uint64) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	for w.synced < seq {
		if w.syncErr != nil {
			return w.syncErr
		}
		if w.syncing {
			w.syncCond.Wait()
			continue
		}
		w.syncing = true
		w.syncMu.Unlock()
		target, err := w.flushAndSync()
		w.syncMu.Lock()
		w.syncing = false
		if err != nil {
			w.syncErr = err
		} else if target > w.synced {
			w.synced = target
		}
		w.syncCond.Broadcast()
	}
	return nil
}

// flushAndSync writes buffered records and fsyncs the active segment,
// returning the seq everything up to which is now durable. Appenders keep
// framing (and rotation waits) while the fsync runs.
func (w *WAL) flushAndSync() (uint64, error) {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return 0, err
	}
	if w.f == nil {
		// Closed: Close fsynced everything (or set w.err).
		seq := w.seq
		w.mu.Unlock()
		return seq, nil
	}
	if err := w.flushLocked(); err != nil {
		w.mu.Unlock()
		return 0, err
	}
	target, f, seg := w.seq, w.f, w.seg
	w.fileMu.RLock()
	w.mu.Unlock()
	err := w.fsync(f)
	w.fileMu.RUnlock()
	if err != nil {
		w.mu.Lock()
		err = w.failLocked(fmt.Errorf("fsync segment %d: %w", seg, err))
		w.mu.Unlock()
		return 0, err
	}
	return target, nil
}

// markSynced records that every record up to seq is durable.
func (w *WAL) markSynced(seq uint64) {
	w.syncMu.Lock()
	if seq > w.synced {
		w.synced = seq
	}
	w.syncCond.Broadcast()
	w.syncMu.Unlock()
}

// Sync makes every record appended so far durable. Only needed under the
// interval and never policies.
func (w *WAL) Sync() error {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return ErrClosed
	}
	seq := w.seq
	w.mu.Unlock()
	return w.waitDurable(seq)
}

func (w *WAL) runSyncer(tick <-chan time.Time, stop func()) {
	defer close(w.done)
	defer stop()
	for {
		select {
		case <-w.stop:
			return
		case <-tick:
			if err := w.Sync(); errors.Is(err, ErrClosed) {
				return // Close is stopping us.
			} else if err != nil {
				// The error is sticky and every Append reports it.
				level.Error(w.logger).Log("msg", "wal periodic sync failed", "err", err)
				return
			}
		}
	}
}

// Rotate fsyncs and closes the active segment and starts a new one, whose
// number it returns.
func (w *WAL) Rotate() (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closing {
		return 0, ErrClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	return w.rotateLocked()
}

func (w *WAL) rotateLocked() (uint64, error) {
	if err := w.closeActiveLocked(); err != nil {
		return 0, err
	}
	next := w.seg + 1
	f, err := createSegment(w.fsys, w.cfg.Dir, next)
	if err != nil {
		return 0, w.failLocked(err)
	}
	w.f, w.seg, w.size = f, next, SegmentHeaderSize
	w.active.Store(next)
	w.m.segments.Inc()
	return next, nil
}

// closeActiveLocked writes, fsyncs and closes the active segment, after
// any fsync in flight on it has finished.
func (w *WAL) closeActiveLocked() error {
	if err := w.flushLocked(); err != nil {
		return err
	}
	w.fileMu.Lock()
	f := w.f
	w.f = nil
	err := w.fsync(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	w.fileMu.Unlock()
	if err != nil {
		return w.failLocked(fmt.Errorf("sync and close segment %d: %w", w.seg, err))
	}
	w.markSynced(w.seq)
	return nil
}

// Truncate deletes every segment numbered below below, except the active
// one, then fsyncs the directory. Deleting a segment that is already gone is
// not an error.
func (w *WAL) Truncate(below uint64) error {
	// Segments only ever get higher numbers, so anything below the active
	// segment seen now can never become active again.
	limit := min(below, w.ActiveSegment())
	if err := w.readers.dropBelow(limit); err != nil {
		return fmt.Errorf("wal: truncate: close readers: %w", err)
	}
	segs, err := listSegments(w.fsys, w.cfg.Dir)
	if err != nil {
		return fmt.Errorf("wal: truncate: %w", err)
	}
	var errs []error
	removed := 0
	for _, seg := range segs {
		if seg >= limit {
			break
		}
		err := w.fsys.Remove(filepath.Join(w.cfg.Dir, SegmentName(seg)))
		switch {
		case err == nil:
			removed++
		case !errors.Is(err, os.ErrNotExist):
			errs = append(errs, fmt.Errorf("wal: truncate segment %d: %w", seg, err))
		}
	}
	if removed > 0 {
		w.m.segments.Sub(float64(removed))
		w.m.segmentsDeleted.Add(float64(removed))
		if err := syncDir(w.fsys, w.cfg.Dir); err != nil {
			errs = append(errs, fmt.Errorf("wal: truncate: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Close stops the interval syncer, writes and fsyncs outstanding records
// and closes the active segment. Appends waiting for an fsync are released
// by it. Close returns ErrClosed if called twice.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return ErrClosed
	}
	w.closing = true
	w.mu.Unlock()
	rerr := w.readers.dropBelow(^uint64(0))

	if w.stop != nil {
		close(w.stop)
		<-w.done
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		if w.f != nil {
			// Already failed: release the descriptor, keep the original error.
			_ = w.f.Close()
			w.f = nil
		}
		w.markFailed()
		return w.err
	}
	if err := w.closeActiveLocked(); err != nil {
		w.markFailed()
		return err
	}
	return rerr
}

// markFailed wakes appenders waiting on a WAL that can no longer sync.
// Called with mu held and w.err set.
func (w *WAL) markFailed() {
	w.syncMu.Lock()
	if w.syncErr == nil {
		w.syncErr = w.err
	}
	w.syncCond.Broadcast()
	w.syncMu.Unlock()
}
