package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// writeSegments creates segments 1..n in dir, each holding perSeg records
// made by makeRecord, and returns the records and, per segment, the file
// offset of each record.
func writeSegments(tb testing.TB, dir string, n, perSeg int) (recs [][][]byte, offsets [][]int64) {
	tb.Helper()
	w, _ := openWAL(tb, testConfig(dir, SyncNever))
	recs = make([][][]byte, n)
	offsets = make([][]int64, n)
	id := uint64(0)
	for s := range n {
		off := int64(SegmentHeaderSize)
		for range perSeg {
			rec := makeRecord(id, int(id*37%300))
			id++
			seg, err := w.Append(rec)
			require.NoError(tb, err)
			require.Equal(tb, uint64(s+1), seg)
			recs[s] = append(recs[s], rec)
			offsets[s] = append(offsets[s], off)
			off += frameSize(len(rec))
		}
		if s < n-1 {
			_, err := w.Rotate()
			require.NoError(tb, err)
		}
	}
	require.NoError(tb, w.Close())
	return recs, offsets
}

func TestTornTail(t *testing.T) {
	src := t.TempDir()
	recs, offsets := writeSegments(t, src, 1, 5)
	full, err := os.ReadFile(segPath(src, 1))
	require.NoError(t, err)
	lastOff := offsets[0][4]
	require.Equal(t, int64(len(full)), lastOff+frameSize(len(recs[0][4])))

	// Cut the segment at every offset from the start of the last record to
	// one byte before its end.
	for cut := lastOff; cut < int64(len(full)); cut++ {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(segPath(dir, 1), full[:cut], 0o600))

		w, _ := openWAL(t, testConfig(dir, SyncAlways))
		got := replayAll(t, w)
		require.Len(t, got, 4, "cut at %d", cut)
		for i, r := range got {
			require.Equal(t, recs[0][i], r.rec)
			require.Equal(t, uint64(1), r.seg)
		}
		require.Equal(t, lastOff, fileSize(t, segPath(dir, 1)), "cut at %d: truncated at the torn record", cut)
		wantCorruptions := 1.0
		if cut == lastOff {
			wantCorruptions = 0 // a clean end between records
		}
		require.Equal(t, wantCorruptions, metricValue(t, w.m.corruptions), "cut at %d", cut)

		// The WAL appends fine afterwards, and a reopen sees it all.
		seg, err := w.Append([]byte("after"))
		require.NoError(t, err)
		require.Equal(t, uint64(2), seg)
		require.NoError(t, w.Close())
		w2, _ := openWAL(t, testConfig(dir, SyncAlways))
		got = replayAll(t, w2)
		require.Len(t, got, 5)
		require.Equal(t, []byte("after"), got[4].rec)
		require.Zero(t, metricValue(t, w2.m.corruptions), "repair is final")
		require.NoError(t, w2.Close())
	}
}

func TestCorruptionInMiddleSegment(t *testing.T) {
	src := t.TempDir()
	recs, offsets := writeSegments(t, src, 3, 6)
	const bad = 3 // index of the damaged record in its segment

	for k := range 3 {
		for _, part := range []struct {
			name string
			at   int64 // byte within the record's frame
		}{{"length", 1}, {"length high byte", 3}, {"crc", 6}, {"payload", RecordHeaderSize + 2}} {
			t.Run(part.name, func(t *testing.T) {
				dir := t.TempDir()
				for s := uint64(1); s <= 3; s++ {
					b, err := os.ReadFile(segPath(src, s))
					require.NoError(t, err)
					if int(s) == k+1 {
						b[offsets[k][bad]+part.at] ^= 0x40
					}
					require.NoError(t, os.WriteFile(segPath(dir, s), b, 0o600))
				}
				w, _ := openWAL(t, testConfig(dir, SyncNever))
				got := replayAll(t, w)

				var want []replayed
				for s := range 3 {
					n := len(recs[s])
					if s == k {
						n = bad
					}
					for _, rec := range recs[s][:n] {
						want = append(want, replayed{seg: uint64(s + 1), rec: rec})
					}
				}
				require.Equal(t, want, got)
				require.Equal(t, offsets[k][bad], fileSize(t, segPath(dir, uint64(k+1))))
				require.Equal(t, 1.0, metricValue(t, w.m.corruptions))
			})
		}
	}
}

func TestGarbageTails(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 5000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	ones := bytes.Repeat([]byte{0xff}, 100)
	tests := []struct {
		name string
		tail []byte
	}{
		{"zero filled, preallocated-looking", make([]byte, 1<<20)},
		{"a few zero bytes", make([]byte, 3)},
		{"random", random},
		{"all ones", ones},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			recs, _ := writeSegments(t, dir, 1, 4)
			size := fileSize(t, segPath(dir, 1))
			f, err := os.OpenFile(segPath(dir, 1), os.O_WRONLY|os.O_APPEND, 0)
			require.NoError(t, err)
			_, err = f.Write(tt.tail)
			require.NoError(t, err)
			require.NoError(t, f.Close())

			w, _ := openWAL(t, testConfig(dir, SyncNever))
			got := replayAll(t, w)
			require.Len(t, got, 4)
			for i := range got {
				require.Equal(t, recs[0][i], got[i].rec)
			}
			require.Equal(t, size, fileSize(t, segPath(dir, 1)))
			require.Equal(t, 1.0, metricValue(t, w.m.corruptions))
		})
	}
}

func TestBadSegmentHeaders(t *testing.T) {
	good := AppendRecord(appendSegmentHeader(nil), []byte("rec"))
	tests := []struct {
		name        string
		content     []byte
		wantRecs    int
		wantSize    int64
		corruptions float64
	}{
		{"empty file", nil, 0, 0, 0},
		{"header only", appendSegmentHeader(nil), 0, SegmentHeaderSize, 0},
		{"short header", []byte("RBW"), 0, 0, 1},
		{"wrong magic", append([]byte("XXXX"), good[4:]...), 0, 0, 1},
		// A power cut can persist a new segment's size but not all of its
		// header: the rest reads as zeros. Version 0 is torn, not newer;
		// found by TestPowerLoss (crashfs.KeepSome), which failed with
		// ErrUnsupportedVersion before.
		{"torn header, version zero", []byte("RBWL\x00\x00\x00\x00"), 0, 0, 1},
		{"torn header, zeros after it", append([]byte("RBWL"), make([]byte, 20)...), 0, 0, 1},
		{"reserved bytes set", append(append([]byte{}, good[:5]...), append([]byte{1, 2, 3}, good[8:]...)...), 1, int64(len(good)), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(segPath(dir, 1), tt.content, 0o600))
			require.NoError(t, os.WriteFile(segPath(dir, 2), good, 0o600))
			w, _ := openWAL(t, testConfig(dir, SyncNever))
			got := replayAll(t, w)
			require.Len(t, got, tt.wantRecs+1, "segment 2 is always read")
			require.Equal(t, uint64(2), got[len(got)-1].seg)
			require.Equal(t, tt.wantSize, fileSize(t, segPath(dir, 1)))
			require.Equal(t, tt.corruptions, metricValue(t, w.m.corruptions))
		})
	}
}

func TestUnsupportedVersionIsNotRepaired(t *testing.T) {
	dir := t.TempDir()
	content := AppendRecord(appendSegmentHeader(nil), []byte("rec"))
	content[4] = 2
	require.NoError(t, os.WriteFile(segPath(dir, 1), content, 0o600))
	w, _ := openWAL(t, testConfig(dir, SyncNever))
	err := w.Replay(func(uint64, []byte) error { return nil })
	require.ErrorIs(t, err, ErrUnsupportedVersion)
	require.Equal(t, int64(len(content)), fileSize(t, segPath(dir, 1)))
}

func TestReadSegmentReportsCorruption(t *testing.T) {
	content := appendSegmentHeader(nil)
	content = AppendRecord(content, []byte("one"))
	off := int64(len(content))
	content = AppendRecord(content, []byte("two"))
	content[len(content)-1] ^= 1

	var got []string
	err := ReadSegment(bytes.NewReader(content), 7, func(rec []byte) error {
		got = append(got, string(rec))
		return nil
	})
	var cerr *CorruptionError
	require.ErrorAs(t, err, &cerr)
	require.Equal(t, uint64(7), cerr.Segment)
	require.Equal(t, off, cerr.Offset)
	require.ErrorIs(t, err, ErrChecksumMismatch)
	require.Contains(t, err.Error(), "segment 7 at offset 19")
	require.Equal(t, []string{"one"}, got)
}

func TestHugeLengthDoesNotAllocate(t *testing.T) {
	// A length field claiming 60 MiB in front of 1 KiB of data: the reader
	// must give up on what is there, not allocate what is announced.
	content := appendSegmentHeader(nil)
	content = binary.LittleEndian.AppendUint32(content, 60<<20)
	content = append(content, make([]byte, 1024)...)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := ReadSegment(bytes.NewReader(content), 1, func([]byte) error { return nil })
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, ErrTruncatedRecord)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(8<<20))
}

// segmentBytes frames recs into a complete segment file.
func segmentBytes(recs ...[]byte) []byte {
	b := appendSegmentHeader(nil)
	for _, r := range recs {
		b = AppendRecord(b, r)
	}
	return b
}

func FuzzReplaySegment(f *testing.F) {
	valid := segmentBytes([]byte("a"), []byte("hello"), bytes.Repeat([]byte{7}, 200), nil)
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(append(bytes.Clone(valid), make([]byte, 64)...))
	f.Add([]byte{})
	f.Add([]byte("RBWL"))
	f.Add(appendSegmentHeader(nil))
	f.Add(append(appendSegmentHeader(nil), 0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4))
	f.Fuzz(func(t *testing.T, data []byte) {
		// What a pure read of the data yields.
		var want [][]byte
		wantSize := int64(len(data))
		rerr := ReadSegment(bytes.NewReader(data), 1, func(rec []byte) error {
			want = append(want, bytes.Clone(rec))
			return nil
		})
		var cerr *CorruptionError
		switch {
		case rerr == nil:
		case errors.As(rerr, &cerr):
			wantSize = cerr.Offset
		case errors.Is(rerr, ErrUnsupportedVersion):
		default:
			t.Fatalf("ReadSegment: %v", rerr)
		}

		dir := fuzzTempDir(t)
		path := filepath.Join(dir, SegmentName(1))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		for pass := range 2 {
			w, err := Open(testConfig(dir, SyncNever), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got [][]byte
			err = w.Replay(func(seg uint64, rec []byte) error {
				got = append(got, bytes.Clone(rec))
				return nil
			})
			corruptions := metricValue(t, w.m.corruptions)
			if cerr := w.Close(); cerr != nil {
				t.Fatal(cerr)
			}
			if errors.Is(rerr, ErrUnsupportedVersion) {
				if !errors.Is(err, ErrUnsupportedVersion) {
					t.Fatalf("pass %d: want ErrUnsupportedVersion, got %v", pass, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("pass %d: replay: %v", pass, err)
			}
			if len(got) != len(want) {
				t.Fatalf("pass %d: %d records, ReadSegment saw %d", pass, len(got), len(want))
			}
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("pass %d: record %d differs", pass, i)
				}
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != wantSize {
				t.Fatalf("pass %d: segment is %d bytes, want %d", pass, fi.Size(), wantSize)
			}
			if pass == 1 && corruptions != 0 {
				t.Fatalf("second replay found corruption again")
			}
		}
	})
}

// fuzzTempDir returns a temporary directory on tmpfs when there is one:
// FuzzReplaySegment opens and closes a WAL per input, and on a real disk
// the fsyncs, not the code under test, would set its pace.
func fuzzTempDir(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "rubato-wal-fuzz-"); err == nil {
			t.Cleanup(func() { _ = os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}
