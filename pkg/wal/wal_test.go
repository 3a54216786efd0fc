package wal

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

var allPolicies = []SyncPolicy{SyncAlways, SyncInterval, SyncNever}

func TestConfigFlagsAndDefaults(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlagsAndApplyDefaults("ingester.", fs)
	require.Equal(t, Config{Dir: "./data/wal", SegmentSize: 128 << 20, SyncPolicy: SyncAlways, SyncInterval: time.Second}, cfg)
	require.NoError(t, cfg.Validate())

	require.NoError(t, fs.Parse([]string{
		"-ingester.wal.path=/x", "-ingester.wal.segment-size=4096",
		"-ingester.wal.sync-policy=interval", "-ingester.wal.sync-interval=250ms",
	}))
	require.Equal(t, Config{Dir: "/x", SegmentSize: 4096, SyncPolicy: SyncInterval, SyncInterval: 250 * time.Millisecond}, cfg)

	fs = flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(discard{})
	cfg.RegisterFlagsAndApplyDefaults("", fs)
	require.Error(t, fs.Parse([]string{"-wal.sync-policy=sometimes"}))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestConfigValidate(t *testing.T) {
	valid := testConfig("dir", SyncAlways)
	tests := []struct {
		name   string
		modify func(*Config)
		ok     bool
	}{
		{"valid", func(*Config) {}, true},
		{"never without interval", func(c *Config) { c.SyncPolicy, c.SyncInterval = SyncNever, 0 }, true},
		{"empty dir", func(c *Config) { c.Dir = "" }, false},
		{"tiny segment", func(c *Config) { c.SegmentSize = MinSegmentSize - 1 }, false},
		{"empty policy", func(c *Config) { c.SyncPolicy = "" }, false},
		{"unknown policy", func(c *Config) { c.SyncPolicy = "sometimes" }, false},
		{"interval without period", func(c *Config) { c.SyncPolicy, c.SyncInterval = SyncInterval, 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.modify(&cfg)
			if tt.ok {
				require.NoError(t, cfg.Validate())
			} else {
				require.Error(t, cfg.Validate())
				_, err := Open(cfg, nil, nil)
				require.Error(t, err)
			}
		})
	}
}

func TestRoundTripAndReopen(t *testing.T) {
	for _, policy := range allPolicies {
		t.Run(string(policy), func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(dir, policy)
			cfg.SegmentSize = 4096

			w, _ := openWAL(t, cfg)
			require.Equal(t, uint64(1), w.ActiveSegment())
			require.Empty(t, replayAll(t, w))
			var want []replayed
			for i := range 100 {
				rec := makeRecord(uint64(i), i*13%500)
				seg, err := w.Append(rec)
				require.NoError(t, err)
				want = append(want, replayed{seg: seg, rec: rec})
			}
			require.Greater(t, w.ActiveSegment(), uint64(1), "4 KiB segments must have rotated")
			last := w.ActiveSegment()
			require.NoError(t, w.Close())

			// Reopen: a new segment after the highest, all records replayed
			// in order with the segments Append returned.
			w2, _ := openWAL(t, cfg)
			require.Equal(t, last+1, w2.ActiveSegment())
			require.Equal(t, want, replayAll(t, w2))
			require.Equal(t, want, replayAll(t, w2), "replay is repeatable")
			seg, err := w2.Append(makeRecord(1000, 10))
			require.NoError(t, err)
			require.Equal(t, last+1, seg)
			want = append(want, replayed{seg: seg, rec: makeRecord(1000, 10)})
			require.NoError(t, w2.Close())

			w3, _ := openWAL(t, cfg)
			require.Equal(t, want, replayAll(t, w3))
		})
	}
}

func TestRotationAtSegmentSize(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir, SyncAlways)
	cfg.SegmentSize = 1024
	w, _ := openWAL(t, cfg)

	// 8-byte header + 9 frames of 108 bytes = 980 <= 1024; a 10th would not fit.
	const perSegment = 9
	for i := range 30 {
		seg, err := w.Append(make([]byte, 100))
		require.NoError(t, err)
		require.Equal(t, uint64(1+i/perSegment), seg, "record %d", i)
	}
	for seg := uint64(1); seg <= 3; seg++ {
		require.Equal(t, int64(SegmentHeaderSize+perSegment*108), fileSize(t, segPath(dir, seg)))
	}

	// A record larger than a segment goes alone into a fresh one.
	active := w.ActiveSegment()
	seg, err := w.Append(make([]byte, 3000))
	require.NoError(t, err)
	require.Equal(t, active+1, seg)
	seg, err = w.Append(make([]byte, 10))
	require.NoError(t, err)
	require.Equal(t, active+2, seg)
	require.Equal(t, int64(SegmentHeaderSize+RecordHeaderSize+3000), fileSize(t, segPath(dir, active+1)))

	// Rotate by hand, including of an empty segment.
	n, err := w.Rotate()
	require.NoError(t, err)
	require.Equal(t, active+3, n)
	n, err = w.Rotate()
	require.NoError(t, err)
	require.Equal(t, active+4, n)
	require.Equal(t, n, w.ActiveSegment())
	require.NoError(t, w.Close())
	require.Equal(t, int64(SegmentHeaderSize), fileSize(t, segPath(dir, active+3)))

	w2, _ := openWAL(t, cfg)
	got := replayAll(t, w2)
	require.Len(t, got, 32)
	require.Equal(t, active+2, got[31].seg)
}

func TestAppendBatch(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir, SyncAlways)
	cfg.SegmentSize = 1024
	w, _ := openWAL(t, cfg)

	_, err := w.Append(make([]byte, 500))
	require.NoError(t, err)
	// 3 x 208 bytes do not fit after the first record: the whole batch
	// moves to the next segment rather than being split.
	batch := [][]byte{makeRecord(1, 188), makeRecord(2, 188), makeRecord(3, 188)}
	seg, err := w.AppendBatch(batch)
	require.NoError(t, err)
	require.Equal(t, uint64(2), seg)
	seg, err = w.AppendBatch(nil)
	require.NoError(t, err)
	require.Equal(t, uint64(2), seg)
	require.NoError(t, w.Close())

	w2, _ := openWAL(t, cfg)
	got := replayAll(t, w2)
	require.Len(t, got, 4)
	for i, r := range got[1:] {
		require.Equal(t, uint64(2), r.seg)
		require.Equal(t, batch[i], r.rec)
	}
}

func TestTruncate(t *testing.T) {
	dir := t.TempDir()
	w, _ := openWAL(t, testConfig(dir, SyncAlways))
	for i := range 4 {
		_, err := w.Append(makeRecord(uint64(i), 10))
		require.NoError(t, err)
		_, err = w.Rotate()
		require.NoError(t, err)
	}
	require.Equal(t, uint64(5), w.ActiveSegment())
	require.Equal(t, []uint64{1, 2, 3, 4, 5}, segmentsOnDisk(t, dir))
	require.NoError(t, w.Close())

	// The reopened WAL's Replay skips what Truncate deleted.
	w, reg := openWAL(t, testConfig(dir, SyncAlways))
	require.Equal(t, uint64(6), w.ActiveSegment())
	require.Equal(t, 6.0, metricValue(t, w.m.segments))

	require.NoError(t, w.Truncate(3))
	require.Equal(t, []uint64{3, 4, 5, 6}, segmentsOnDisk(t, dir))
	got := replayAll(t, w)
	require.Len(t, got, 2)
	require.Equal(t, uint64(3), got[0].seg)

	require.NoError(t, w.Truncate(3), "nothing left below 3")
	require.NoError(t, w.Truncate(1000))
	require.Equal(t, []uint64{6}, segmentsOnDisk(t, dir), "the active segment is never deleted")
	require.Empty(t, replayAll(t, w))
	require.Equal(t, 1.0, metricValue(t, w.m.segments))
	require.Equal(t, 5.0, metricValue(t, w.m.segmentsDeleted))
	_, err := reg.Gather()
	require.NoError(t, err)

	// Appends still work after the old segments are gone.
	_, err = w.Append([]byte("after"))
	require.NoError(t, err)
}

func TestTruncateIgnoresOtherFiles(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(segPath(dir, 0)+".tmp", []byte("x"), 0o600))
	require.NoError(t, os.WriteFile(dir+"/README", []byte("x"), 0o600))
	w, _ := openWAL(t, testConfig(dir, SyncNever))
	require.Equal(t, uint64(1), w.ActiveSegment())
	require.NoError(t, w.Truncate(100))
	require.FileExists(t, dir+"/README")
	require.FileExists(t, segPath(dir, 0)+".tmp")
}

func TestClosedAndLimits(t *testing.T) {
	w, _ := openWAL(t, testConfig(t.TempDir(), SyncAlways))
	_, err := w.Append(make([]byte, MaxRecordSize+1))
	require.ErrorIs(t, err, ErrRecordTooLarge)
	_, err = w.AppendBatch([][]byte{nil, make([]byte, MaxRecordSize+1)})
	require.ErrorIs(t, err, ErrRecordTooLarge)

	require.NoError(t, w.Close())
	_, err = w.Append([]byte("x"))
	require.ErrorIs(t, err, ErrClosed)
	_, err = w.AppendBatch([][]byte{[]byte("x")})
	require.ErrorIs(t, err, ErrClosed)
	_, err = w.Rotate()
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, w.Sync(), ErrClosed)
	require.ErrorIs(t, w.Close(), ErrClosed)
}

func TestConcurrentAppenders(t *testing.T) {
	const (
		writers   = 8
		perWriter = 300
	)
	for _, policy := range allPolicies {
		t.Run(string(policy), func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(dir, policy)
			cfg.SegmentSize = 32 << 10 // rotate while appending
			w, _ := openWAL(t, cfg)

			segOf := make([][]uint64, writers)
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for g := range writers {
				segOf[g] = make([]uint64, perWriter)
				wg.Go(func() {
					for i := range perWriter {
						id := uint64(g*perWriter + i)
						seg, err := w.Append(makeRecord(id, int(id%700)))
						if err != nil {
							errs <- err
							return
						}
						segOf[g][i] = seg
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			require.Equal(t, float64(writers*perWriter), metricValue(t, w.m.appends))
			require.NoError(t, w.Close())

			w2, _ := openWAL(t, cfg)
			seen := make(map[uint64]bool)
			next := make([]int, writers) // each writer's records come in its order
			var lastSeg uint64
			require.NoError(t, w2.Replay(func(seg uint64, rec []byte) error {
				id, err := checkRecord(rec)
				if err != nil {
					return err
				}
				if seen[id] {
					return fmt.Errorf("record %d replayed twice", id)
				}
				seen[id] = true
				g, i := int(id)/perWriter, int(id)%perWriter
				if i != next[g] {
					return fmt.Errorf("writer %d: record %d replayed, want %d", g, i, next[g])
				}
				next[g]++
				if seg != segOf[g][i] {
					return fmt.Errorf("record %d in segment %d, Append said %d", id, seg, segOf[g][i])
				}
				if seg < lastSeg {
					return fmt.Errorf("segment went back from %d to %d", lastSeg, seg)
				}
				lastSeg = seg
				return nil
			}))
			require.Len(t, seen, writers*perWriter)
			require.Greater(t, lastSeg, uint64(1))
		})
	}
}

func TestIntervalPolicySyncsInBackground(t *testing.T) {
	w, _ := openWAL(t, testConfig(t.TempDir(), SyncInterval))
	_, err := w.Append([]byte("x"))
	require.NoError(t, err)
	// Eventually polls on another goroutine: read the counter without require.
	require.Eventually(t, func() bool {
		var m dto.Metric
		return w.m.fsyncs.Write(&m) == nil && m.Counter.GetValue() > 0
	}, 30*time.Second, 5*time.Millisecond)
	require.NoError(t, w.Close())
}

func TestSyncPolicyFsyncs(t *testing.T) {
	// "never" fsyncs only on Sync/Rotate/Close; "always" before each
	// sequential Append returns.
	w, _ := openWAL(t, testConfig(t.TempDir(), SyncNever))
	for range 10 {
		_, err := w.Append([]byte("x"))
		require.NoError(t, err)
	}
	require.Zero(t, metricValue(t, w.m.fsyncs))
	require.NoError(t, w.Sync())
	require.Equal(t, 1.0, metricValue(t, w.m.fsyncs))
	require.NoError(t, w.Sync(), "nothing new: no fsync")
	require.Equal(t, 1.0, metricValue(t, w.m.fsyncs))

	w2, _ := openWAL(t, testConfig(t.TempDir(), SyncAlways))
	for range 10 {
		_, err := w2.Append([]byte("x"))
		require.NoError(t, err)
	}
	require.Equal(t, 10.0, metricValue(t, w2.m.fsyncs))
	require.Equal(t, 10.0, metricValue(t, w2.m.appendBytes))
}

func TestReplayCallbackError(t *testing.T) {
	dir := t.TempDir()
	w, _ := openWAL(t, testConfig(dir, SyncNever))
	_, err := w.Append([]byte("a"))
	require.NoError(t, err)
	require.NoError(t, w.Close())

	w2, reg := openWAL(t, testConfig(dir, SyncNever))
	boom := errors.New("boom")
	// Even a callback error that looks like corruption must not make
	// Replay truncate anything.
	err = w2.Replay(func(uint64, []byte) error {
		return fmt.Errorf("wrapped: %w", &CorruptionError{Segment: 1, Offset: 8, Err: boom})
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, int64(SegmentHeaderSize+RecordHeaderSize+1), fileSize(t, segPath(dir, 1)))
	require.Zero(t, metricValue(t, w2.m.corruptions))
	_, err = reg.Gather()
	require.NoError(t, err)
}

func TestReopenOnSameRegistry(t *testing.T) {
	dir := t.TempDir()
	w, reg := openWAL(t, testConfig(dir, SyncAlways))
	_, err := w.Append([]byte("a"))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	w2, err := Open(testConfig(dir, SyncAlways), nil, reg)
	require.NoError(t, err)
	_, err = w2.Append([]byte("b"))
	require.NoError(t, err)
	require.Equal(t, 2.0, metricValue(t, w2.m.appends), "the counter carries over")
	require.NoError(t, w2.Close())
}

func TestWriteFailureIsSticky(t *testing.T) {
	for _, policy := range allPolicies {
		t.Run(string(policy), func(t *testing.T) {
			dir := t.TempDir()
			w, _ := openWAL(t, testConfig(dir, policy))
			_, err := w.Append([]byte("before"))
			require.NoError(t, err)
			require.NoError(t, w.Sync())

			// Pull the file out from under the WAL: the next write fails.
			require.NoError(t, w.f.Close())
			var wg sync.WaitGroup
			errs := make([]error, 4)
			for i := range errs {
				wg.Go(func() { _, errs[i] = w.Append([]byte("lost")) })
			}
			wg.Wait()
			if policy != SyncAlways {
				// The first write fails; any appends before it never
				// reached a write of their own. Sync surfaces it.
				_ = w.Sync()
			}
			_, err = w.Append([]byte("after"))
			require.ErrorIs(t, err, os.ErrClosed, "the first failure is reported to every later append")
			for _, err := range errs {
				if err != nil {
					require.ErrorIs(t, err, os.ErrClosed)
				}
			}
			if policy == SyncAlways {
				for _, err := range errs {
					require.Error(t, err, "no append is acknowledged without its fsync")
				}
			}
			_, err = w.Rotate()
			require.ErrorIs(t, err, os.ErrClosed)
			require.ErrorIs(t, w.Close(), os.ErrClosed)
			require.Equal(t, 1.0, metricValue(t, w.m.failures))

			// Reopening recovers what was acknowledged before the failure.
			w2, _ := openWAL(t, testConfig(dir, policy))
			got := replayAll(t, w2)
			require.NotEmpty(t, got)
			require.Equal(t, []byte("before"), got[0].rec)
		})
	}
}
