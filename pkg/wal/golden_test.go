package wal

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func goldenRecords() [][]byte {
	return [][]byte{nil, []byte("a"), []byte("hello, write-ahead log"), bytes.Repeat([]byte{0xa5}, 300)}
}

// TestGoldenSegment pins the on-disk format: the bytes a WAL writes for a
// fixed set of records must not change without a format version bump.
func TestGoldenSegment(t *testing.T) {
	golden := filepath.Join("testdata", "golden", SegmentName(1))
	dir := t.TempDir()
	w, _ := openWAL(t, testConfig(dir, SyncAlways))
	for _, rec := range goldenRecords() {
		_, err := w.Append(rec)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	written, err := os.ReadFile(segPath(dir, 1))
	require.NoError(t, err)
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(golden), 0o750))
		require.NoError(t, os.WriteFile(golden, written, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, want, written)

	// And the golden file replays to the same records.
	dir = t.TempDir()
	require.NoError(t, os.WriteFile(segPath(dir, 1), want, 0o600))
	w2, _ := openWAL(t, testConfig(dir, SyncAlways))
	got := replayAll(t, w2)
	require.Len(t, got, len(goldenRecords()))
	for i, rec := range goldenRecords() {
		require.Equal(t, uint64(1), got[i].seg)
		require.Equal(t, len(rec), len(got[i].rec))
		require.True(t, bytes.Equal(rec, got[i].rec))
	}
}
