package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/rubatodb/rubato/pkg/internal/vfs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testConfig(dir string, policy SyncPolicy) Config {
	return Config{
		Dir:          dir,
		SegmentSize:  DefaultSegmentSize,
		SyncPolicy:   policy,
		SyncInterval: 10 * time.Millisecond,
	}
}

// openWAL opens a WAL on a fresh registry, which it returns for metric
// checks, and closes the WAL at cleanup unless the test already did.
func openWAL(tb testing.TB, cfg Config) (*WAL, *prometheus.Registry) {
	tb.Helper()
	reg := prometheus.NewRegistry()
	w, err := Open(cfg, log.NewNopLogger(), reg)
	require.NoError(tb, err)
	tb.Cleanup(func() {
		if err := w.Close(); err != nil && !errors.Is(err, ErrClosed) {
			tb.Errorf("close: %v", err)
		}
	})
	return w, reg
}

type replayed struct {
	seg uint64
	rec []byte
}

func replayAll(tb testing.TB, w *WAL) []replayed {
	tb.Helper()
	var out []replayed
	require.NoError(tb, w.Replay(func(seg uint64, rec []byte) error {
		out = append(out, replayed{seg: seg, rec: append([]byte(nil), rec...)})
		return nil
	}))
	return out
}

// makeRecord builds a self-checking record: id, payload length, then
// size bytes derived from id.
func makeRecord(id uint64, size int) []byte {
	rec := make([]byte, 12+size)
	binary.LittleEndian.PutUint64(rec, id)
	binary.LittleEndian.PutUint32(rec[8:], uint32(size))
	for i := range size {
		rec[12+i] = byte(id*31 + uint64(i)*7)
	}
	return rec
}

// checkRecord returns the id of a record built by makeRecord, or an error
// if it is not exactly such a record.
func checkRecord(rec []byte) (uint64, error) {
	if len(rec) < 12 {
		return 0, fmt.Errorf("record of %d bytes is too short", len(rec))
	}
	id := binary.LittleEndian.Uint64(rec)
	size := int(binary.LittleEndian.Uint32(rec[8:]))
	if len(rec) != 12+size {
		return 0, fmt.Errorf("record %d: %d bytes, want %d", id, len(rec), 12+size)
	}
	for i := range size {
		if rec[12+i] != byte(id*31+uint64(i)*7) {
			return 0, fmt.Errorf("record %d: byte %d differs", id, i)
		}
	}
	return id, nil
}

func segPath(dir string, seg uint64) string { return filepath.Join(dir, SegmentName(seg)) }

func fileSize(tb testing.TB, path string) int64 {
	tb.Helper()
	fi, err := os.Stat(path)
	require.NoError(tb, err)
	return fi.Size()
}

// segmentsOnDisk lists the segment numbers in dir.
func segmentsOnDisk(tb testing.TB, dir string) []uint64 {
	tb.Helper()
	segs, err := listSegments(vfs.OS{}, dir)
	require.NoError(tb, err)
	return segs
}

// metricValue reads a counter or gauge.
func metricValue(tb testing.TB, m prometheus.Metric) float64 {
	tb.Helper()
	var out dto.Metric
	require.NoError(tb, m.Write(&out))
	switch {
	case out.Counter != nil:
		return out.Counter.GetValue()
	case out.Gauge != nil:
		return out.Gauge.GetValue()
	}
	tb.Fatalf("metric %s is neither counter nor gauge", m.Desc())
	return 0
}
