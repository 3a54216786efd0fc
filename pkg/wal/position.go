package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/rubatodb/rubato/pkg/internal/vfs"
)

// Position is where a record's payload starts: its segment and the byte
// offset in that segment's file.
type Position struct {
	Segment uint64
	Offset  int64
}

// readers caches read-only file handles of segments for ReadAt. Handles are
// dropped when Truncate deletes their segment and on Close.
type readers struct {
	mu    sync.Mutex
	files map[uint64]vfs.File
}

func (r *readers) get(fsys vfs.FS, dir string, seg uint64) (vfs.File, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.files[seg]; f != nil {
		return f, nil
	}
	f, err := fsys.OpenFile(filepath.Join(dir, SegmentName(seg)), os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	if r.files == nil {
		r.files = map[uint64]vfs.File{}
	}
	r.files[seg] = f
	return f, nil
}

// dropBelow closes handles of segments numbered below below.
func (r *readers) dropBelow(below uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for seg, f := range r.files {
		if seg < below {
			errs = append(errs, f.Close())
			delete(r.files, seg)
		}
	}
	return errors.Join(errs...)
}

// ReadAt reads len(p) bytes of segment seg at offset off: payload bytes of
// a record whose Position AppendPos or ReplayPos returned (any sub-range of
// it). Records are in the file by the time AppendPos returns, under every
// sync policy. The caller must not read segments it has truncated away.
// Safe for concurrent use.
func (w *WAL) ReadAt(seg uint64, off int64, p []byte) error {
	f, err := w.readers.get(w.fsys, w.cfg.Dir, seg)
	if err != nil {
		return fmt.Errorf("wal: open segment %d: %w", seg, err)
	}
	if _, err := f.ReadAt(p, off); err != nil {
		return fmt.Errorf("wal: read segment %d at %d: %w", seg, off, err)
	}
	return nil
}
