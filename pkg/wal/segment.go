package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/rubatodb/rubato/pkg/internal/vfs"
)

// Segment header: magic, format version, three reserved bytes. See FORMAT.md.
const (
	segmentMagic      = "RBWL"
	segmentVersion    = 1
	SegmentHeaderSize = 8
)

// segmentNameLen is the length of a segment file name: the segment number in
// zero-padded decimal, so that lexical order is numeric order.
const segmentNameLen = 20

// SegmentName returns the file name (not path) of segment seg.
func SegmentName(seg uint64) string { return fmt.Sprintf("%020d", seg) }

// parseSegmentName returns the segment number of a file name, or false if
// the name is not a segment file name. Anything else in the directory is
// left alone.
func parseSegmentName(name string) (uint64, bool) {
	if len(name) != segmentNameLen {
		return 0, false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return 0, false
		}
	}
	seg, err := strconv.ParseUint(name, 10, 64)
	return seg, err == nil
}

// listSegments returns the numbers of the segment files in dir, ascending.
func listSegments(fsys vfs.FS, dir string) ([]uint64, error) {
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list segments in %s: %w", dir, err)
	}
	var segs []uint64
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if seg, ok := parseSegmentName(e.Name()); ok {
			segs = append(segs, seg)
		}
	}
	slices.Sort(segs)
	return segs, nil
}

func appendSegmentHeader(dst []byte) []byte {
	dst = append(dst, segmentMagic...)
	return append(dst, segmentVersion, 0, 0, 0)
}

// createSegment creates segment seg in dir, writes its header and makes
// the new directory entry durable. The header itself becomes durable with
// the file's first fsync; until then a crash can leave an empty file, which
// Replay reads as an empty segment.
func createSegment(fsys vfs.FS, dir string, seg uint64) (vfs.File, error) {
	path := filepath.Join(dir, SegmentName(seg))
	f, err := fsys.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("create segment %d: %w", seg, err)
	}
	var hdr [SegmentHeaderSize]byte
	if _, err := f.Write(appendSegmentHeader(hdr[:0])); err != nil {
		return nil, errors.Join(fmt.Errorf("write segment %d header: %w", seg, err), f.Close())
	}
	if err := syncDir(fsys, dir); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return f, nil
}

// syncDir fsyncs a directory so that file creations, renames and removals
// in it survive power loss.
func syncDir(fsys vfs.FS, dir string) error {
	if err := vfs.SyncDir(fsys, dir); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

// readChunk is the initial read buffer size and the granularity of reads.
const readChunk = 128 << 10

// segmentReader decodes records from a segment file through a window over
// a reusable buffer. The buffer only grows as far as data actually read
// requires, so a corrupt length field cannot make it allocate more than
// about twice the bytes really present.
type segmentReader struct {
	r          io.Reader
	buf        []byte
	start, end int   // unread window buf[start:end]
	off        int64 // file offset of buf[start]
}

func (s *segmentReader) reset(r io.Reader) {
	s.r, s.start, s.end, s.off = r, 0, 0, 0
	if s.buf == nil {
		s.buf = make([]byte, readChunk)
	}
}

// fill makes sure at least need bytes are buffered. It returns
// io.ErrUnexpectedEOF if the input ends first, with what there was still
// buffered.
func (s *segmentReader) fill(need int) error {
	if s.end-s.start >= need {
		return nil
	}
	if s.start > 0 {
		s.end = copy(s.buf, s.buf[s.start:s.end])
		s.start = 0
	}
	for s.end < need {
		if s.end == len(s.buf) {
			// Grow geometrically, but not past what is asked for: the
			// buffer stays within 2x of the data actually read.
			n := min(2*len(s.buf), max(need, readChunk))
			nb := make([]byte, n)
			copy(nb, s.buf[:s.end])
			s.buf = nb
		}
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if errors.Is(err, io.EOF) {
			if s.end >= need {
				return nil
			}
			return io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readHeader checks the segment header. An empty file is a valid, empty
// segment (ok == false, err == nil): a crash may leave one right after the
// file was created.
func (s *segmentReader) readHeader(seg uint64) (ok bool, err error) {
	if err := s.fill(1); errors.Is(err, io.ErrUnexpectedEOF) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("read segment %d: %w", seg, err)
	}
	if err := s.fill(SegmentHeaderSize); errors.Is(err, io.ErrUnexpectedEOF) {
		return false, &CorruptionError{Segment: seg, Offset: 0, Err: fmt.Errorf("short header: %w", ErrBadSegmentHeader)}
	} else if err != nil {
		return false, fmt.Errorf("read segment %d: %w", seg, err)
	}
	hdr := s.buf[s.start : s.start+SegmentHeaderSize]
	if string(hdr[:4]) != segmentMagic {
		return false, &CorruptionError{Segment: seg, Offset: 0, Err: fmt.Errorf("magic %x: %w", hdr[:4], ErrBadSegmentHeader)}
	}
	if hdr[4] == 0 {
		// No format ever had version 0: this is a header the power cut
		// tore (the file's size reached the disk, its last bytes did not,
		// and they read as zeros). Refusing it as "newer" would keep the
		// WAL from opening after a power loss.
		return false, &CorruptionError{Segment: seg, Offset: 0, Err: fmt.Errorf("version 0: %w", ErrBadSegmentHeader)}
	}
	if hdr[4] != segmentVersion {
		return false, fmt.Errorf("segment %d has version %d: %w", seg, hdr[4], ErrUnsupportedVersion)
	}
	// hdr[5:8] are reserved: written as zero, ignored by version 1 readers.
	s.start += SegmentHeaderSize
	s.off += SegmentHeaderSize
	return true, nil
}

// next returns the next record's payload, valid until the following call,
// or io.EOF at a clean end of the segment.
func (s *segmentReader) next(seg uint64) ([]byte, error) {
	if err := s.fill(1); errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, io.EOF
	} else if err != nil {
		return nil, fmt.Errorf("read segment %d: %w", seg, err)
	}
	corrupt := func(err error) error { return &CorruptionError{Segment: seg, Offset: s.off, Err: err} }
	if err := s.fill(RecordHeaderSize); errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, corrupt(ErrTruncatedRecord)
	} else if err != nil {
		return nil, fmt.Errorf("read segment %d: %w", seg, err)
	}
	length := binary.LittleEndian.Uint32(s.buf[s.start:])
	if length > MaxRecordSize {
		return nil, corrupt(fmt.Errorf("length %d: %w", length, ErrRecordTooLarge))
	}
	if err := s.fill(RecordHeaderSize + int(length)); errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, corrupt(ErrTruncatedRecord)
	} else if err != nil {
		return nil, fmt.Errorf("read segment %d: %w", seg, err)
	}
	payload, n, err := DecodeRecord(s.buf[s.start:s.end])
	if err != nil {
		return nil, corrupt(err)
	}
	s.start += n
	s.off += int64(n)
	return payload, nil
}

// ReadSegment reads the segment file contents r (segment number seg, used
// in errors) and calls fn for each record in order; rec is only valid
// during fn. It stops at the first unreadable record and returns a
// *CorruptionError whose Offset is where that record starts, after fn has
// seen every record before it. An empty r is an empty segment. ReadSegment
// never modifies anything; Replay is what repairs.
func ReadSegment(r io.Reader, seg uint64, fn func(rec []byte) error) error {
	var s segmentReader
	s.reset(r)
	return s.readAll(seg, fn)
}

func (s *segmentReader) readAll(seg uint64, fn func(rec []byte) error) error {
	return s.readAllAt(seg, func(_ int64, rec []byte) error { return fn(rec) })
}

// readAllAt is readAll that also passes each payload's offset in the file.
func (s *segmentReader) readAllAt(seg uint64, fn func(off int64, rec []byte) error) error {
	ok, err := s.readHeader(seg)
	if !ok || err != nil {
		return err
	}
	for {
		off := s.off + RecordHeaderSize
		rec, err := s.next(seg)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(off, rec); err != nil {
			return &callbackError{err: err}
		}
	}
}

// callbackError marks an error returned by the caller's function, so that
// it is never mistaken for corruption even if it wraps a *CorruptionError.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }
func (e *callbackError) Unwrap() error { return e.err }
