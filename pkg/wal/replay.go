package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-kit/log/level"
)

// Replay calls fn for every record in the segments that existed when the
// WAL was opened, in segment order and, within a segment, in append order.
// seg is the record's segment number; rec is only valid during fn.
//
// A torn or corrupt record ends its segment: the file is truncated at the
// record's offset (and fsynced), a warning names the segment and offset,
// rubato_wal_corruptions_total is incremented, and replay goes on with the
// next segment, which is read in full. Segments deleted by Truncate since
// Open are skipped. Replay returns the first error from fn, wrapped, an
// I/O error, or an error wrapping ErrUnsupportedVersion for a segment from a
// newer format, which it leaves untouched.
//
// Replay may run while records are appended (it never reads the active
// segment) but not concurrently with Truncate, and fn must not call
// Truncate.
func (w *WAL) Replay(fn func(seg uint64, rec []byte) error) error {
	return w.ReplayPos(func(p Position, rec []byte) error { return fn(p.Segment, rec) })
}

// ReplayPos is Replay that also gives each record's Position, for ReadAt.
func (w *WAL) ReplayPos(fn func(pos Position, rec []byte) error) error {
	var r segmentReader
	for _, seg := range w.preexisting {
		err := w.replaySegment(&r, seg, fn)
		var cbErr *callbackError
		if errors.As(err, &cbErr) {
			return fmt.Errorf("wal: replay segment %d: %w", seg, cbErr.err)
		}
		// Callback errors were taken out above, so a CorruptionError here
		// came from the segment reader itself.
		var corrupt *CorruptionError
		if errors.As(err, &corrupt) {
			if err := w.repair(corrupt); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("wal: replay: %w", err)
		}
	}
	return nil
}

func (w *WAL) replaySegment(r *segmentReader, seg uint64, fn func(pos Position, rec []byte) error) error {
	f, err := w.fsys.OpenFile(filepath.Join(w.cfg.Dir, SegmentName(seg)), os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	r.reset(f)
	err = r.readAllAt(seg, func(off int64, rec []byte) error { return fn(Position{Segment: seg, Offset: off}, rec) })
	if cerr := f.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// repair cuts the segment off where the corruption starts, so that the
// bad bytes are not read again and a later crash cannot make them look
// like the start of valid data.
func (w *WAL) repair(c *CorruptionError) error {
	path := filepath.Join(w.cfg.Dir, SegmentName(c.Segment))
	f, err := w.fsys.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("wal: repair segment %d: %w", c.Segment, err)
	}
	var dropped int64
	if fi, err := f.Stat(); err == nil {
		dropped = fi.Size() - c.Offset
	}
	err = f.Truncate(c.Offset)
	if err == nil {
		err = w.fsync(f)
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("wal: repair segment %d: truncate at %d: %w", c.Segment, c.Offset, err)
	}
	w.m.corruptions.Inc()
	w.m.truncatedBytes.Add(float64(dropped))
	level.Warn(w.logger).Log("msg", "wal segment corrupt; truncated it at the bad record, replay continues with the next segment",
		"segment", c.Segment, "offset", c.Offset, "dropped_bytes", dropped, "err", c.Err)
	return nil
}
