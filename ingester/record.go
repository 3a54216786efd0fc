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
const recordV1 = 1

// maxFragmentSpans bounds the span count a record may claim, so a corrupt
// record cannot make replay account absurd numbers.
const maxFragmentSpans = 1 << 24

var errBadRecord = errors.New("ingester: malformed wal record")

// fragment is one trace's bytes inside a record.
type fragment struct {
	id    [16]byte
	spans uint32
	off   int // offset of the trace bytes inside the record
	n     int // length of the trace bytes
}

// appendRecord encodes a record into dst.
func appendRecord(dst []byte, tenantID string, ids [][]byte, traces [][]byte, spans []uint32, accepted []int) ([]byte, []fragment) {
	dst = append(dst, recordV1)
	dst = binary.AppendUvarint(dst, uint64(len(tenantID)))
	dst = append(dst, tenantID...)
	dst = binary.AppendUvarint(dst, uint64(len(accepted)))
	frags := make([]fragment, 0, len(accepted))
	for _, i := range accepted {
		var f fragment
		copy(f.id[:], ids[i])
		f.spans = spans[i]
		dst = append(dst, f.id[:]...)
		dst = binary.AppendUvarint(dst, uint64(f.spans))
		dst = binary.AppendUvarint(dst, uint64(len(traces[i])))
		f.off, f.n = len(dst), len(traces[i])
		dst = append(dst, traces[i]...)
		frags = append(frags, f)
	}
	return dst, frags
}

// parseRecord decodes a record's framing (not the trace bytes). The tenant
// is validated, so a corrupt record can never name a path.
func parseRecord(rec []byte, frags []fragment) (string, []fragment, error) {
	if len(rec) < 1 || rec[0] != recordV1 {
		return "", nil, fmt.Errorf("%w: unknown version", errBadRecord)
	}
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
		return "", nil, err
	}
	if tl > uint64(len(rec)-p) {
		return "", nil, fmt.Errorf("%w: tenant length %d", errBadRecord, tl)
	}
	tenantID := string(rec[p : p+int(tl)])
	p += int(tl)
	if err := tenant.Validate(tenantID); err != nil {
		return "", nil, fmt.Errorf("%w: %w", errBadRecord, err)
	}
	count, err := uv()
	if err != nil {
		return "", nil, err
	}
	// Each fragment takes at least 18 bytes, which bounds count before any
	// allocation depends on it.
	if count > uint64(len(rec)-p)/18 {
		return "", nil, fmt.Errorf("%w: count %d", errBadRecord, count)
	}
	for i := uint64(0); i < count; i++ {
		if len(rec)-p < 16 {
			return "", nil, fmt.Errorf("%w: short id", errBadRecord)
		}
		var f fragment
		copy(f.id[:], rec[p:p+16])
		p += 16
		s, err := uv()
		if err != nil {
			return "", nil, err
		}
		if s > maxFragmentSpans {
			return "", nil, fmt.Errorf("%w: span count %d", errBadRecord, s)
		}
		f.spans = uint32(s)
		n, err := uv()
		if err != nil {
			return "", nil, err
		}
		if n > uint64(len(rec)-p) {
			return "", nil, fmt.Errorf("%w: fragment length %d", errBadRecord, n)
		}
		f.off, f.n = p, int(n)
		p += int(n)
		frags = append(frags, f)
	}
	if p != len(rec) {
		return "", nil, fmt.Errorf("%w: %d trailing bytes", errBadRecord, len(rec)-p)
	}
	return tenantID, frags, nil
}
