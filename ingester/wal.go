package ingester

import (
	"path/filepath"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/local"
	"github.com/rubatodb/rubato/pkg/wal"
)

// WALConfig is `storage.trace.wal`. Its path is the ingester's working
// directory: WAL segments live in <path>/segments, complete blocks waiting
// for (or shortly after) upload in <path>/blocks.
type WALConfig struct {
	wal.Config `yaml:",inline"`
}

// walPos is where a record's payload starts in its segment file.
type walPos struct {
	seg uint64
	off int64
}

// part is where fragment f of the record at pos sits.
func (pos walPos) part(f fragment) part {
	return part{seg: pos.seg, off: pos.off + int64(f.off), n: uint32(f.n)}
}

// walLog is what the ingester needs of the WAL.
type walLog interface {
	append(rec []byte) (walPos, error)
	readAt(seg uint64, off int64, p []byte) error
	replay(fn func(pos walPos, rec []byte) error) error
	rotate() error
	truncate(below uint64) error
	active() uint64
	close() error
}

type walAdapter struct{ w *wal.WAL }

func openWAL(cfg WALConfig, logger log.Logger, reg prometheus.Registerer) (walLog, error) {
	c := cfg.Config
	c.Dir = filepath.Join(cfg.Dir, "segments")
	w, err := wal.Open(c, logger, reg)
	if err != nil {
		return nil, err
	}
	return walAdapter{w}, nil
}

func (a walAdapter) append(rec []byte) (walPos, error) {
	p, err := a.w.AppendPos(rec)
	return walPos{seg: p.Segment, off: p.Offset}, err
}

func (a walAdapter) readAt(seg uint64, off int64, p []byte) error { return a.w.ReadAt(seg, off, p) }

func (a walAdapter) replay(fn func(walPos, []byte) error) error {
	return a.w.ReplayPos(func(p wal.Position, rec []byte) error {
		return fn(walPos{seg: p.Segment, off: p.Offset}, rec)
	})
}

func (a walAdapter) rotate() error {
	_, err := a.w.Rotate()
	return err
}

func (a walAdapter) truncate(below uint64) error { return a.w.Truncate(below) }
func (a walAdapter) active() uint64              { return a.w.ActiveSegment() }
func (a walAdapter) close() error                { return a.w.Close() }

func newLocalStore(dir string, logger log.Logger) (backend.Backend, error) {
	return local.New(local.Config{Path: dir}, logger)
}
