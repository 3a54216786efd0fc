package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDecodeRecord(t *testing.T) {
	valid := AppendRecord(nil, []byte("hello"))
	flip := func(i int) []byte {
		b := bytes.Clone(valid)
		b[i] ^= 0x01
		return b
	}
	huge := binary.LittleEndian.AppendUint32(nil, MaxRecordSize+1)
	huge = append(huge, 0, 0, 0, 0)

	tests := []struct {
		name    string
		in      []byte
		want    []byte
		wantN   int
		wantErr error
	}{
		{name: "valid", in: valid, want: []byte("hello"), wantN: 13},
		{name: "valid with trailing data", in: append(bytes.Clone(valid), 1, 2, 3), want: []byte("hello"), wantN: 13},
		{name: "empty payload", in: AppendRecord(nil, nil), want: []byte{}, wantN: 8},
		{name: "nil", in: nil, wantErr: ErrTruncatedRecord},
		{name: "short header", in: valid[:7], wantErr: ErrTruncatedRecord},
		{name: "short payload", in: valid[:12], wantErr: ErrTruncatedRecord},
		{name: "zeros", in: make([]byte, 64), wantErr: ErrChecksumMismatch},
		{name: "flipped length", in: flip(0), wantErr: ErrChecksumMismatch},
		{name: "flipped crc", in: flip(5), wantErr: ErrChecksumMismatch},
		{name: "flipped payload", in: flip(10), wantErr: ErrChecksumMismatch},
		{name: "length over max", in: huge, wantErr: ErrRecordTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload, n, err := DecodeRecord(tt.in)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.Nil(t, payload)
				require.Zero(t, n)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantN, n)
			require.Equal(t, tt.want, payload)
		})
	}
}

func TestRecordCRCOfZeroHeaderIsNotZero(t *testing.T) {
	// FORMAT.md relies on this: a zero-filled tail never decodes.
	require.Equal(t, uint32(0x48674bc7), recordCRC(make([]byte, 4), nil))
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(AppendRecord(nil, []byte("hello")))
	f.Add(AppendRecord(nil, nil))
	f.Add(AppendRecord(AppendRecord(nil, []byte("a")), []byte("b")))
	f.Add(AppendRecord(nil, bytes.Repeat([]byte{0xab}, 300))[:100])
	f.Add(make([]byte, 16))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		payload, n, err := DecodeRecord(data)
		if err != nil {
			if !errors.Is(err, ErrTruncatedRecord) && !errors.Is(err, ErrChecksumMismatch) && !errors.Is(err, ErrRecordTooLarge) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if payload != nil || n != 0 {
				t.Fatalf("error %v with payload %d bytes, n=%d", err, len(payload), n)
			}
			return
		}
		if n < RecordHeaderSize || n > len(data) || n != RecordHeaderSize+len(payload) {
			t.Fatalf("n=%d, payload %d bytes, input %d bytes", n, len(payload), len(data))
		}
		if got := binary.LittleEndian.Uint32(data); int(got) != len(payload) {
			t.Fatalf("length field %d, payload %d bytes", got, len(payload))
		}
		// Recompute the checksum independently of recordCRC.
		want := crc32.Checksum(data[:4:4], crc32.MakeTable(crc32.Castagnoli))
		want = crc32.Update(want, crc32.MakeTable(crc32.Castagnoli), payload)
		if want != binary.LittleEndian.Uint32(data[4:]) {
			t.Fatalf("payload returned although its CRC does not match")
		}
		if !bytes.Equal(AppendRecord(nil, payload), data[:n]) {
			t.Fatalf("re-encoding differs from input")
		}
	})
}

func BenchmarkDecodeRecord(b *testing.B) {
	buf := AppendRecord(nil, bytes.Repeat([]byte{0x5a}, 4096))
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeRecord(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendRecord(b *testing.B) {
	payload := bytes.Repeat([]byte{0x5a}, 4096)
	dst := make([]byte, 0, 8192)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendRecord(dst[:0], payload)
	}
}
