package ingester

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/google/uuid"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/tenant"
)

// A flush mark says which WAL fragments a block holds, so that a block
// already in the backend is not built and uploaded again after a crash
// between its upload and the WAL truncation.
//
// When a block is cut, before its first upload, the ingester writes
// <wal dir>/flushed/<block uuid> (temporary file, fsync, rename, fsync of
// the directory). On start, before the WAL is replayed, each mark is read
// and its block looked up in the backend: if meta.json is there and names
// the mark's tenant and block (an upload puts meta.json last, so the block
// is whole), replay skips exactly the mark's fragments; they are in that
// block. Any doubt (mark unreadable, meta.json missing or unreadable,
// backend unreachable) skips nothing: the fragments are replayed and cut
// into a new block, uploaded a second time at worst, never lost. A mark is
// deleted once the WAL is truncated above every segment it names.
//
// An upload retry uses a new block ID (uploadID): before retry n the
// ingester durably writes n to <block uuid>.attempt, and start-up looks for
// the block under the IDs of the last maxAttemptsChecked attempts.
//
// File layout: "RBFLUSH1", tenant (uvarint length, bytes), block ID (16
// bytes), fragment count (uvarint), fragments sorted by position, each as
// uvarint segment delta, uvarint offset (delta from the previous fragment's
// when in the same segment), uvarint length; then CRC-32C of all that.
const flushMarkMagic = "RBFLUSH1"

// maxFlushMarkBytes bounds the mark file a start-up reads.
const maxFlushMarkBytes = 1 << 30

// attemptExt names the file holding a block's latest upload attempt.
const attemptExt = ".attempt"

// maxAttemptsChecked bounds the backend lookups per mark at start-up; a
// block uploaded under an older attempt's ID is uploaded again.
const maxAttemptsChecked = 16

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type flushMark struct {
	tenant string
	id     uuid.UUID
	parts  []part // sorted by (seg, off)
}

func cmpPart(a, b part) int {
	if a.seg != b.seg {
		if a.seg < b.seg {
			return -1
		}
		return 1
	}
	switch {
	case a.off < b.off:
		return -1
	case a.off > b.off:
		return 1
	}
	return 0
}

func (m *flushMark) maxSeg() uint64 {
	if len(m.parts) == 0 {
		return 0
	}
	return m.parts[len(m.parts)-1].seg
}

func (m *flushMark) marshal() []byte {
	b := []byte(flushMarkMagic)
	b = binary.AppendUvarint(b, uint64(len(m.tenant)))
	b = append(b, m.tenant...)
	b = append(b, m.id[:]...)
	b = binary.AppendUvarint(b, uint64(len(m.parts)))
	var prev part
	for _, p := range m.parts {
		b = binary.AppendUvarint(b, p.seg-prev.seg)
		off := p.off
		if p.seg == prev.seg {
			off -= prev.off
		}
		b = binary.AppendUvarint(b, uint64(off))
		b = binary.AppendUvarint(b, uint64(p.n))
		prev = p
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errBadFlushMark = errors.New("ingester: malformed flush mark")

func parseFlushMark(b []byte) (*flushMark, error) {
	if len(b) < len(flushMarkMagic)+4 || string(b[:len(flushMarkMagic)]) != flushMarkMagic {
		return nil, fmt.Errorf("%w: no magic", errBadFlushMark)
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: checksum", errBadFlushMark)
	}
	p := len(flushMarkMagic)
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(body[p:])
		if n <= 0 {
			return 0, fmt.Errorf("%w: bad varint at %d", errBadFlushMark, p)
		}
		p += n
		return v, nil
	}
	tl, err := uv()
	if err != nil {
		return nil, err
	}
	if tl > uint64(len(body)-p) || uint64(len(body)-p)-tl < 16 {
		return nil, fmt.Errorf("%w: tenant length %d", errBadFlushMark, tl)
	}
	m := &flushMark{tenant: string(body[p : p+int(tl)])}
	p += int(tl)
	if err := tenant.Validate(m.tenant); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadFlushMark, err)
	}
	copy(m.id[:], body[p:p+16])
	p += 16
	count, err := uv()
	if err != nil {
		return nil, err
	}
	if count > uint64(len(body)-p)/3 { // a fragment takes at least 3 bytes
		return nil, fmt.Errorf("%w: count %d", errBadFlushMark, count)
	}
	m.parts = make([]part, 0, count)
	var prev part
	for range count {
		ds, err := uv()
		if err != nil {
			return nil, err
		}
		off, err := uv()
		if err != nil {
			return nil, err
		}
		n, err := uv()
		if err != nil {
			return nil, err
		}
		cur := part{seg: prev.seg + ds, off: int64(off), n: uint32(n)}
		if ds == 0 {
			cur.off += prev.off
		}
		if cur.seg < prev.seg || cur.off < 0 || n > 1<<32-1 || (len(m.parts) > 0 && cmpPart(prev, cur) >= 0) {
			return nil, fmt.Errorf("%w: fragments out of order", errBadFlushMark)
		}
		m.parts = append(m.parts, cur)
		prev = cur
	}
	if p != len(body) {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadFlushMark, len(body)-p)
	}
	return m, nil
}

// flushMarks manages the marks of one ingester. A nil *flushMarks does
// nothing (tests that build an instance without starting the ingester).
type flushMarks struct {
	dir    string
	logger log.Logger

	mu     sync.Mutex
	maxSeg map[string]uint64 // file name → highest segment its mark names
}

func openFlushMarks(dir string, logger log.Logger) (*flushMarks, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("flush marks: %w", err)
	}
	return &flushMarks{dir: dir, logger: logger, maxSeg: map[string]uint64{}}, nil
}

// record durably writes the mark of a block just cut from h.
func (fm *flushMarks) record(meta *block.Meta, h *headBlock) error {
	if fm == nil {
		return nil
	}
	m := &flushMark{tenant: meta.TenantID, id: meta.BlockID}
	for _, t := range h.traces {
		m.parts = append(m.parts, t.parts...)
	}
	slices.SortFunc(m.parts, cmpPart)
	name := meta.BlockID.String()
	if err := writeFileDurable(fm.dir, name, m.marshal()); err != nil {
		return fmt.Errorf("flush mark of block %s: %w", meta.BlockID, err)
	}
	fm.mu.Lock()
	fm.maxSeg[name] = m.maxSeg()
	fm.mu.Unlock()
	return nil
}

func writeFileDurable(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// recordAttempt durably records that upload attempt n of block id starts.
func (fm *flushMarks) recordAttempt(id uuid.UUID, n int) error {
	if fm == nil || n == 0 {
		return nil
	}
	return writeFileDurable(fm.dir, id.String()+attemptExt, []byte(strconv.Itoa(n)))
}

func (fm *flushMarks) readAttempt(name string) int {
	data, err := os.ReadFile(filepath.Join(fm.dir, name+attemptExt))
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(string(data))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// prune deletes the marks of blocks whose every WAL segment is below
// `below`, that is truncated: replay can no longer meet their fragments.
func (fm *flushMarks) prune(below uint64) {
	if fm == nil {
		return
	}
	fm.mu.Lock()
	var drop []string
	for name, s := range fm.maxSeg {
		if s < below {
			drop = append(drop, name)
			delete(fm.maxSeg, name)
		}
	}
	fm.mu.Unlock()
	for _, name := range drop {
		if err := os.Remove(filepath.Join(fm.dir, name+attemptExt)); err != nil && !errors.Is(err, os.ErrNotExist) {
			level.Warn(fm.logger).Log("msg", "delete flush mark", "mark", name, "err", err)
		}
		if err := os.Remove(filepath.Join(fm.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			level.Warn(fm.logger).Log("msg", "delete flush mark", "mark", name, "err", err)
		}
	}
}

// flushedParts is the sorted set of WAL fragments replay skips.
type flushedParts []part

// load reads every mark and returns the fragments of those whose block is
// in store; it never fails (doubt means replaying). Marks it cannot read
// are deleted; the rest are remembered for prune.
func (fm *flushMarks) load(ctx context.Context, store backend.Backend, timeout time.Duration) flushedParts {
	if fm == nil {
		return nil
	}
	entries, err := os.ReadDir(fm.dir)
	if err != nil {
		level.Warn(fm.logger).Log("msg", "read flush marks; replaying everything", "err", err)
		return nil
	}
	var skip flushedParts
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(fm.dir, name)
		if filepath.Ext(name) == ".tmp" || !e.Type().IsRegular() {
			_ = os.Remove(path) // a write that never finished
			continue
		}
		if base, ok := strings.CutSuffix(name, attemptExt); ok {
			if _, err := os.Stat(filepath.Join(fm.dir, base)); errors.Is(err, os.ErrNotExist) {
				_ = os.Remove(path) // its mark was pruned
			}
			continue
		}
		m, err := readFlushMark(path)
		if err != nil {
			level.Warn(fm.logger).Log("msg", "ignoring unreadable flush mark", "mark", name, "err", err)
			_ = os.Remove(path)
			continue
		}
		fm.mu.Lock()
		fm.maxSeg[name] = m.maxSeg()
		fm.mu.Unlock()
		var (
			in  bool
			uid uuid.UUID
		)
		last := fm.readAttempt(name)
		for n := last; n >= 0 && n > last-maxAttemptsChecked && !in && err == nil; n-- {
			uid = uploadID(m.id, n)
			in, err = blockInBackend(ctx, store, m.tenant, uid, timeout)
		}
		if err != nil {
			level.Warn(fm.logger).Log("msg", "cannot tell whether a block is in the backend; replaying its wal data (it may be uploaded twice)", "tenant", m.tenant, "block", m.id, "err", err)
			continue
		}
		if in {
			skip = append(skip, m.parts...)
			level.Info(fm.logger).Log("msg", "block already in the backend; its wal data is not replayed", "tenant", m.tenant, "block", uid, "fragments", len(m.parts))
		}
	}
	slices.SortFunc(skip, cmpPart)
	return skip
}

func readFlushMark(path string) (*flushMark, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.Size() > maxFlushMarkBytes {
		return nil, fmt.Errorf("%w: %d bytes", errBadFlushMark, info.Size())
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, err
	}
	return parseFlushMark(buf.Bytes())
}

// blockInBackend reports whether the block's meta.json is in store and
// names it. false with a nil error means "certainly not uploaded whole".
func blockInBackend(ctx context.Context, store backend.Backend, tenantID string, id uuid.UUID, timeout time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	data, err := backend.ReadAll(ctx, store, block.MetaKey(tenantID, id))
	if errors.Is(err, backend.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	m, err := block.ParseMeta(data)
	if err != nil || m.TenantID != tenantID || m.BlockID != id {
		return false, nil // not this block whole: upload it again
	}
	return true, nil
}

// filter removes from frags, in place, the fragments of the record at pos
// that a flushed block holds.
func (s flushedParts) filter(pos walPos, frags []fragment) []fragment {
	if len(s) == 0 {
		return frags
	}
	return slices.DeleteFunc(frags, func(f fragment) bool {
		p := pos.part(f)
		i, found := slices.BinarySearchFunc(s, p, cmpPart)
		return found && s[i].n == p.n
	})
}
