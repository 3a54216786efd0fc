package ingester

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/rubatodb/rubato/pkg/tenant"
)

// A WAL record is one push of one tenant:
//
//	version  byte (= recordV1)
//	tenant   uvarint length, bytes
//	count    uvarint
//	count × { id [16]byte | spans uvarint | length uvarint | trace bytes }
//
// trace bytes is an encoded OTLP TracesData fragment. Each fragment is
// contiguous in the record, so the ingester keeps only its position and
// reads it back from the segment file when needed.
//
// A replicated push (pushID ≠ 0, replicas.go) is written as recordV2:
//
//	version  byte (= recordV2)
//	tenant   uvarint length, bytes
//	pushID   uvarint
//	count    uvarint
//	count × { id [16]byte | flags byte | spans uvarint | length uvarint | trace bytes }
//
// flags bit 0 set: the fragment is held (kept for durability, built into
// a block by another replica). What later happens to held fragments is
// written as recordRelease (their block is in the backend: forget them)
// or recordPromote (build them here):
//
//	version  byte (= recordRelease or recordPromote)
//	tenant   uvarint length, bytes
//	count    uvarint
//	count × { id [16]byte | pushID uvarint }
const (
	recordV1      = 1
	recordV2      = 2
	recordRelease = 3
	recordPromote = 4
)

const flagHold = 1

// maxFragmentSpans bounds the span count a record may claim, so a corrupt
// record cannot make replay account absurd numbers.
const maxFragmentSpans = 1 << 24

var errBadRecord = errors.New("ingester: malformed wal record")

// fragment is one trace's bytes inside a record.
type fragment struct {
	id    [16]byte
	spans uint32
	off   int    // offset of the trace bytes inside the record
	n     int    // length of the trace bytes
	push  uint64 // the record's pushID (0: unreplicated)
	hold  bool   // held, not built here
}

// heldKey names a held fragment: one trace's spans from one push.
type heldKey struct {
	id   [16]byte
	push uint64
}

// pushRecord is what appendRecord writes: the push's ID (0 for an
// unreplicated push, written as recordV1) and which fragments are held.
type pushRecord struct {
	tenant string
	push   uint64
	hold   []bool // by request index; nil: none
}

// appendRecord encodes a push record of the accepted fragments into dst.
func appendRecord(dst []byte, pr pushRecord, ids [][]byte, traces [][]byte, spans []uint32, accepted []int) ([]byte, []fragment) {
	v := byte(recordV1)
	if pr.push != 0 {
		v = recordV2
	}
	dst = append(dst, v)
	dst = binary.AppendUvarint(dst, uint64(len(pr.tenant)))
	dst = append(dst, pr.tenant...)
	if v == recordV2 {
		dst = binary.AppendUvarint(dst, pr.push)
	}
	dst = binary.AppendUvarint(dst, uint64(len(accepted)))
	frags := make([]fragment, 0, len(accepted))
	for _, i := range accepted {
		f := fragment{push: pr.push, hold: pr.push != 0 && i < len(pr.hold) && pr.hold[i]}
		copy(f.id[:], ids[i])
		f.spans = spans[i]
		dst = append(dst, f.id[:]...)
		if v == recordV2 {
			var fl byte
			if f.hold {
				fl = flagHold
			}
			dst = append(dst, fl)
		}
		dst = binary.AppendUvarint(dst, uint64(f.spans))
		dst = binary.AppendUvarint(dst, uint64(len(traces[i])))
		f.off, f.n = len(dst), len(traces[i])
		dst = append(dst, traces[i]...)
		frags = append(frags, f)
	}
	return dst, frags
}

// appendHeldRecord encodes a recordRelease or recordPromote of keys.
func appendHeldRecord(dst []byte, kind byte, tenantID string, keys []heldKey) []byte {
	dst = append(dst, kind)
	dst = binary.AppendUvarint(dst, uint64(len(tenantID)))
	dst = append(dst, tenantID...)
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, k := range keys {
		dst = append(dst, k.id[:]...)
		dst = binary.AppendUvarint(dst, k.push)
	}
	return dst
}

// parsedRecord is a decoded record: a push's fragments (recordV1, V2) or
// held keys (recordRelease, recordPromote).
type parsedRecord struct {
	kind   byte
	tenant string
	frags  []fragment
	keys   []heldKey
}

// parseRecord decodes a record's framing (not the trace bytes), reusing
// frags. The tenant is validated, so a corrupt record can never name a path.
func parseRecord(rec []byte, frags []fragment) (parsedRecord, error) {
	if len(rec) < 1 || rec[0] < recordV1 || rec[0] > recordPromote {
		return parsedRecord{}, fmt.Errorf("%w: unknown version", errBadRecord)
	}
	out := parsedRecord{kind: rec[0]}
	p := 1
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(rec[p:])
		if n <= 0 {
			return 0, fmt.Errorf("%w: bad varint at %d", errBadRecord, p)
		}
		p += n
		return v, nil
	}
	tl, err := uv()
	if err != nil {
		return out, err
	}
	if tl > uint64(len(rec)-p) {
		return out, fmt.Errorf("%w: tenant length %d", errBadRecord, tl)
	}
	out.tenant = string(rec[p : p+int(tl)])
	p += int(tl)
	if err := tenant.Validate(out.tenant); err != nil {
		return out, fmt.Errorf("%w: %w", errBadRecord, err)
	}
	var push uint64
	if out.kind == recordV2 {
		if push, err = uv(); err != nil {
			return out, err
		}
	}
	count, err := uv()
	if err != nil {
		return out, err
	}
	if out.kind == recordRelease || out.kind == recordPromote {
		// Each key takes at least 17 bytes.
		if count > uint64(len(rec)-p)/17 {
			return out, fmt.Errorf("%w: count %d", errBadRecord, count)
		}
		out.keys = make([]heldKey, 0, count)
		for i := uint64(0); i < count; i++ {
			if len(rec)-p < 16 {
				return out, fmt.Errorf("%w: short id", errBadRecord)
			}
			var k heldKey
			copy(k.id[:], rec[p:p+16])
			p += 16
			if k.push, err = uv(); err != nil {
				return out, err
			}
			out.keys = append(out.keys, k)
		}
		if p != len(rec) {
			return out, fmt.Errorf("%w: %d trailing bytes", errBadRecord, len(rec)-p)
		}
		return out, nil
	}
	// Each fragment takes at least 18 bytes, which bounds count before any
	// allocation depends on it.
	if count > uint64(len(rec)-p)/18 {
		return out, fmt.Errorf("%w: count %d", errBadRecord, count)
	}
	for i := uint64(0); i < count; i++ {
		if len(rec)-p < 16 {
			return out, fmt.Errorf("%w: short id", errBadRecord)
		}
		f := fragment{push: push}
		copy(f.id[:], rec[p:p+16])
		p += 16
		if out.kind == recordV2 {
			if p >= len(rec) {
				return out, fmt.Errorf("%w: short flags", errBadRecord)
			}
			f.hold = rec[p]&flagHold != 0
			p++
		}
		s, err := uv()
		if err != nil {
			return out, err
		}
		if s > maxFragmentSpans {
			return out, fmt.Errorf("%w: span count %d", errBadRecord, s)
		}
		f.spans = uint32(s)
		n, err := uv()
		if err != nil {
			return out, err
		}
		if n > uint64(len(rec)-p) {
			return out, fmt.Errorf("%w: fragment length %d", errBadRecord, n)
		}
		f.off, f.n = p, int(n)
		p += int(n)
		frags = append(frags, f)
	}
	if p != len(rec) {
		return out, fmt.Errorf("%w: %d trailing bytes", errBadRecord, len(rec)-p)
	}
	out.frags = frags
	return out, nil
}
