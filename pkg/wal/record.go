package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// MaxRecordSize is the largest payload Append accepts. A record header
// announcing more is treated as corruption rather than allocated, so a
// flipped bit in a length field can never make Replay ask for gigabytes.
const MaxRecordSize = 64 << 20

// RecordHeaderSize is the framing overhead of one record: a little-endian
// uint32 payload length followed by a little-endian uint32 CRC32C. See
// FORMAT.md.
const RecordHeaderSize = 8

// Errors. Corruption found while reading is reported as a *CorruptionError
// wrapping one of ErrTruncatedRecord, ErrRecordTooLarge, ErrChecksumMismatch
// or ErrBadSegmentHeader.
var (
	// ErrClosed is returned by operations on a closed WAL.
	ErrClosed = errors.New("wal: closed")
	// ErrRecordTooLarge: a payload (or a length field) is over MaxRecordSize.
	ErrRecordTooLarge = errors.New("wal: record too large")
	// ErrTruncatedRecord: the data ends inside a record (a torn write).
	ErrTruncatedRecord = errors.New("wal: truncated record")
	// ErrChecksumMismatch: a record's CRC32C does not match its contents.
	ErrChecksumMismatch = errors.New("wal: checksum mismatch")
	// ErrBadSegmentHeader: a segment does not start with the segment magic.
	ErrBadSegmentHeader = errors.New("wal: bad segment header")
	// ErrUnsupportedVersion: a segment was written by a newer format
	// version. Replay stops with this error instead of "repairing" (that
	// is, destroying) data it cannot read.
	ErrUnsupportedVersion = errors.New("wal: unsupported segment version")
)

// CorruptionError reports unreadable data at Offset bytes into segment file
// Segment. Everything before Offset in that segment was read successfully.
type CorruptionError struct {
	Segment uint64
	Offset  int64
	Err     error
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("wal: corruption in segment %d at offset %d: %v", e.Segment, e.Offset, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// castagnoli is a read-only lookup table; crc32 uses SSE4.2/ARM CRC
// instructions for it where available.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordCRC is CRC32C over the 4 length bytes followed by the payload.
// Covering the length makes an all-zero header invalid (CRC32C of four zero
// bytes is 0x48674bc7, not 0), so a zero-filled tail never decodes as an
// empty record.
func recordCRC(lenBytes, payload []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, lenBytes), castagnoli, payload)
}

// frameSize is the number of bytes a payload of n bytes occupies on disk.
func frameSize(n int) int64 { return RecordHeaderSize + int64(n) }

// AppendRecord appends the framed form of payload to dst and returns the
// extended slice. The caller must ensure len(payload) <= MaxRecordSize.
func AppendRecord(dst, payload []byte) []byte {
	off := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	crc := recordCRC(dst[off:off+4], payload)
	dst = binary.LittleEndian.AppendUint32(dst, crc)
	return append(dst, payload...)
}

// DecodeRecord decodes the record at the start of buf. It returns the
// payload, which aliases buf, and n, the number of bytes the whole frame
// occupies. On error n is 0 and the error is ErrTruncatedRecord (buf ends
// inside the record), ErrRecordTooLarge or ErrChecksumMismatch. A payload is
// only ever returned after its checksum has been verified.
func DecodeRecord(buf []byte) (payload []byte, n int, err error) {
	if len(buf) < RecordHeaderSize {
		return nil, 0, ErrTruncatedRecord
	}
	length := binary.LittleEndian.Uint32(buf[0:4])
	if length > MaxRecordSize {
		return nil, 0, fmt.Errorf("length %d: %w", length, ErrRecordTooLarge)
	}
	end := RecordHeaderSize + int(length)
	if len(buf) < end {
		return nil, 0, ErrTruncatedRecord
	}
	want := binary.LittleEndian.Uint32(buf[4:8])
	payload = buf[RecordHeaderSize:end:end]
	if got := recordCRC(buf[0:4], payload); got != want {
		return nil, 0, fmt.Errorf("crc32c %08x, header says %08x: %w", got, want, ErrChecksumMismatch)
	}
	return payload, end, nil
}
