package wal

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/pkg/internal/vfs/crashfs"
)

// The power-loss tests run the WAL on crashfs, which keeps what was not
// fsynced apart and throws it away (or, under crashfs.KeepSome, a random
// part of it) at a simulated power cut. Unlike kill -9 (crash_test.go), a
// power cut is what a missing fsync loses data to, so these tests are the
// ones that fail when an fsync the WAL relies on is removed. Checked by hand
// (each removed in turn, the test run, the fsync restored):
//
//   - fsync in flushAndSync (group commit): policy=always fails at seed 0,
//     "acknowledged records lost".
//   - directory fsync in createSegment: policy=always fails at seed 0, every
//     record of the new segment lost.
//   - fsync in closeActiveLocked (rotation, Close): both policies fail, the
//     records a rotation marked durable are lost.
//   - Sync in the interval syncer: policy=interval fails, records
//     acknowledged before the last-but-one tick lost.
//   - directory fsyncs in Open (MkdirAllDurable): "the WAL directory is gone".
//   - directory fsync in Truncate: "replayed from segment N, which Truncate
//     deleted".
//   - fsync after Replay's repair truncation: nothing fails, correctly: Open
//     never appends to an old segment, so a torn tail that comes back is
//     found and cut again at the next replay.

// plDir is the WAL directory inside the simulated disk: two levels, so that
// the directories' own creation must be made durable too.
const plDir = "/data/wal"

// plRounds is the number of power cuts per seed: after each, the next round
// opens the WAL on the recovered disk (replaying and repairing there) and
// appends more.
const plRounds = 2

type plAck struct {
	seg   uint64
	event int64 // when it was acknowledged, on the run's event counter
}

// plRun is one round: writers appending until the power is cut.
type plRun struct {
	policy SyncPolicy
	rng    *rand.Rand
	round  uint64

	events atomic.Int64 // orders acknowledgements and ticks

	mu        sync.Mutex
	acked     map[uint64]plAck
	attempted map[uint64]uint64 // writer -> highest id it tried
	truncated uint64            // records in segments below are not required
	gone      uint64            // Truncate returned nil: segments below must stay deleted
	tickStart []int64           // event at which tick k (from 1) was sent
}

// plState carries what the rounds of one seed require of the disk.
type plState struct {
	required map[uint64]uint64 // id -> segment: must be replayed
	gone     uint64            // no record may come from a segment below
}

func TestPowerLoss(t *testing.T) {
	seeds := 60
	if testing.Short() {
		seeds = 8
	}
	for _, policy := range []SyncPolicy{SyncAlways, SyncInterval} {
		for _, mode := range []crashfs.Mode{crashfs.LoseUnsynced, crashfs.KeepSome} {
			t.Run(fmt.Sprintf("policy=%s/mode=%s", policy, mode), func(t *testing.T) {
				cuts, lost := 0, 0
				for seed := range uint64(seeds) {
					c, l := powerLossSeed(t, policy, mode, seed)
					cuts += c
					lost += l
					if t.Failed() {
						t.Fatalf("seed %d failed", seed)
					}
				}
				t.Logf("%d power cuts; %d acknowledged records lost within the documented bound", cuts, lost)
			})
		}
	}
}

// powerLossSeed runs plRounds rounds of append-then-cut for one seed and
// checks the disk after each. It returns the number of cuts and how many
// acknowledged records were (allowably) lost.
func powerLossSeed(t *testing.T, policy SyncPolicy, mode crashfs.Mode, seed uint64) (cuts, lost int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, uint64(len(policy))))
	disk := crashfs.New()
	st := &plState{required: map[uint64]uint64{}}
	for round := range uint64(plRounds) {
		r := &plRun{policy: policy, rng: rng, round: round, acked: map[uint64]plAck{}, attempted: map[uint64]uint64{}}
		r.run(t, disk)
		disk = disk.Recover(mode, seed*plRounds+round)
		cuts++
		lost += r.check(t, disk, st, fmt.Sprintf("seed %d round %d", seed, round))
		if t.Failed() {
			return cuts, lost
		}
	}
	return cuts, lost
}

// run opens the WAL on disk, replays it, starts writers and cuts the power.
func (r *plRun) run(t *testing.T, disk *crashfs.FS) {
	t.Helper()
	// Small segments rotate every few records, so that cuts land in
	// rotations; large ones keep a round in one segment, so that records
	// are made durable by group commit or the syncer, not by a rotation.
	segSize := int64(2 << 10)
	if r.rng.IntN(2) == 0 {
		segSize = 1 << 20
	}
	cfg := Config{Dir: plDir, SegmentSize: segSize, SyncPolicy: r.policy, SyncInterval: time.Hour}
	tick := make(chan time.Time)
	var ticker tickerFunc = func(time.Duration) (<-chan time.Time, func()) { return tick, func() {} }
	if r.policy == SyncAlways {
		// Cut at a random file-system operation: in an append, a group
		// commit, a rotation, a truncation, Open or the replay before.
		disk.CutAtOp(disk.Ops() + 1 + int64(r.rng.IntN(400)))
	}
	w, err := open(cfg, disk, log.NewNopLogger(), nil, ticker)
	if err != nil {
		require.ErrorIs(t, err, crashfs.ErrPowerCut)
		return
	}
	defer func() { _ = w.Close() }()
	if err := w.Replay(func(uint64, []byte) error { return nil }); err != nil {
		require.ErrorIs(t, err, crashfs.ErrPowerCut)
		return
	}

	stop := make(chan struct{})
	// Under the interval policy appends do not wait for fsyncs; writers
	// take a permit per append so that a round stays small.
	var permits chan struct{}
	if r.policy == SyncInterval {
		permits = make(chan struct{}, 1024)
	}
	var wg sync.WaitGroup
	const writers = 4
	var failed atomic.Int32
	for g := range uint64(writers) {
		seed := r.rng.Uint64()
		wg.Go(func() {
			defer failed.Add(1)
			r.writer(w, g, seed, permits, stop)
		})
	}
	if r.policy == SyncAlways {
		r.maintain(t, w, r.rng.Uint64(), func() bool { return failed.Load() == writers })
	} else {
		r.tickThenCut(t, disk, tick, permits, func() bool { return failed.Load() > 0 })
	}
	close(stop)
	wg.Wait()
	require.True(t, disk.IsCut())
}

// writer appends records (single or batched) until an append fails (the
// power cut) or stop is closed.
func (r *plRun) writer(w *WAL, g, seed uint64, permits, stop chan struct{}) {
	rng := rand.New(rand.NewPCG(seed, g))
	base := r.round<<40 | g<<32
	for i := uint64(0); i < 1<<20; {
		if permits != nil {
			select {
			case <-stop:
				return
			case <-permits:
			}
		} else {
			select {
			case <-stop:
				return
			default:
			}
		}
		n := uint64(1)
		if rng.IntN(4) == 0 {
			n = 1 + uint64(rng.IntN(3))
		}
		recs := make([][]byte, n)
		for j := range n {
			recs[j] = makeRecord(base+i+j, rng.IntN(400))
		}
		r.mu.Lock()
		r.attempted[g] = base + i + n - 1
		r.mu.Unlock()
		var seg uint64
		var err error
		if n == 1 {
			seg, err = w.Append(recs[0])
		} else {
			seg, err = w.AppendBatch(recs)
		}
		if err != nil {
			return
		}
		ev := r.events.Add(1)
		r.mu.Lock()
		for j := range n {
			r.acked[base+i+j] = plAck{seg: seg, event: ev}
		}
		r.mu.Unlock()
		i += n
	}
}

// maintain rotates and truncates now and then until done.
func (r *plRun) maintain(t *testing.T, w *WAL, seed uint64, done func() bool) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	for !done() {
		time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
		switch rng.IntN(4) {
		case 0:
			_, _ = w.Rotate()
		case 1:
			// As the ingester does after a flush: drop segments below
			// one at most two back from the active one.
			active := w.ActiveSegment()
			below := active - min(active, uint64(rng.IntN(3)))
			r.mu.Lock()
			r.truncated = max(r.truncated, below)
			r.mu.Unlock()
			// Truncate deletes below min(below, its active segment),
			// which is below: the active segment never goes down.
			if err := w.Truncate(below); err == nil {
				r.mu.Lock()
				r.gone = max(r.gone, below)
				r.mu.Unlock()
			}
		}
	}
}

// tickThenCut drives the interval syncer: it sends 2 to 6 ticks with
// appends in between, then cuts the power after a few more file-system
// operations. Tick k is received only after the Sync of tick k-1 returned,
// so everything acknowledged before tick K-1 was sent must survive.
func (r *plRun) tickThenCut(t *testing.T, disk *crashfs.FS, tick chan time.Time, permits chan struct{}, failed func() bool) {
	t.Helper()
	ticks := 2 + r.rng.IntN(5)
	waitAcks := func(n int64) {
		target := r.events.Load() + n
		for range n {
			permits <- struct{}{}
		}
		for r.events.Load() < target && !failed() {
			time.Sleep(20 * time.Microsecond)
		}
	}
	for range ticks {
		waitAcks(1 + int64(r.rng.IntN(40)))
		ev := r.events.Add(1)
		select {
		case tick <- time.Now():
		case <-time.After(10 * time.Second):
			t.Fatal("interval syncer took no tick for 10s")
		}
		r.mu.Lock()
		r.tickStart = append(r.tickStart, ev)
		r.mu.Unlock()
	}
	disk.CutAtOp(disk.Ops() + 1 + int64(r.rng.IntN(60)))
	for !disk.IsCut() {
		waitAcks(1)
	}
}

// check replays the recovered disk from a real directory and holds it to
// what the round acknowledged. It returns how many acknowledged records were
// lost (allowed under the interval policy only).
func (r *plRun) check(t *testing.T, disk *crashfs.FS, st *plState, where string) int {
	t.Helper()
	// What this round adds to the requirements.
	r.mu.Lock()
	var durableBefore int64 = 1<<63 - 1 // always: every acknowledgement
	if r.policy == SyncInterval {
		durableBefore = 0
		if k := len(r.tickStart); k >= 2 {
			durableBefore = r.tickStart[k-2]
		}
	}
	optional := map[uint64]bool{}
	for id, a := range r.acked {
		if a.event < durableBefore {
			st.required[id] = a.seg
		} else {
			optional[id] = true
		}
	}
	for id, seg := range st.required {
		if seg < r.truncated {
			delete(st.required, id)
		}
	}
	st.gone = max(st.gone, r.gone)
	attempted := r.attempted
	r.mu.Unlock()

	dir := t.TempDir()
	require.NoError(t, disk.WriteTo(dir), where)
	walDir := filepath.Join(dir, plDir)
	if _, err := os.Stat(walDir); errors.Is(err, fs.ErrNotExist) {
		require.Empty(t, st.required, "%s: the WAL directory is gone", where)
		return len(optional)
	}
	w, err := Open(testConfig(walDir, SyncNever), log.NewNopLogger(), nil)
	require.NoError(t, err, where)
	defer func() { require.NoError(t, w.Close()) }()

	seen := map[uint64]bool{}
	last := map[uint64]uint64{} // writer key -> last id replayed
	require.NoError(t, w.Replay(func(seg uint64, rec []byte) error {
		id, err := checkRecord(rec)
		if err != nil {
			return fmt.Errorf("segment %d: %w", seg, err)
		}
		if seg < st.gone {
			return fmt.Errorf("record %d replayed from segment %d, which Truncate deleted", id, seg)
		}
		if seen[id] {
			return fmt.Errorf("record %d replayed twice", id)
		}
		seen[id] = true
		writer := id >> 32
		if prev, ok := last[writer]; ok && id <= prev {
			return fmt.Errorf("record %d replayed after %d of the same writer", id, prev)
		}
		last[writer] = id
		if id>>40 == r.round && id > attempted[writer&0xff] {
			return fmt.Errorf("record %d was never appended", id)
		}
		return nil
	}), where)
	var missing []uint64
	for id := range st.required {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	require.Empty(t, missing, "%s: %d acknowledged records lost (of %d required)", where, len(missing), len(st.required))
	lost := 0
	for id := range optional {
		if !seen[id] {
			lost++
		}
	}
	return lost
}

// TestSyncPolicyReachesTheDisk counts the fsyncs that reach the file system
// (crashfs counts File.Sync calls), not the WAL's own metric: under
// "always" every sequential Append fsyncs its segment before returning and
// is on disk after a power cut; under "never" nothing is fsynced until Sync.
func TestSyncPolicyReachesTheDisk(t *testing.T) {
	seg := plDir + "/" + SegmentName(1)
	for _, tc := range []struct {
		policy    SyncPolicy
		wantSyncs int
		survive   int
	}{
		{SyncAlways, 5, 5},
		{SyncNever, 0, 0},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			disk := crashfs.New()
			w, err := OpenFS(Config{Dir: plDir, SegmentSize: DefaultSegmentSize, SyncPolicy: tc.policy}, disk, nil, nil)
			require.NoError(t, err)
			for i := range uint64(5) {
				_, err := w.Append(makeRecord(i, 10))
				require.NoError(t, err)
			}
			require.Equal(t, tc.wantSyncs, disk.Syncs(seg))
			disk.Cut()
			require.ErrorIs(t, w.Close(), crashfs.ErrPowerCut)

			r, err := OpenFS(testConfig(plDir, SyncNever), disk.Recover(crashfs.LoseUnsynced, 0), nil, nil)
			require.NoError(t, err)
			n := 0
			require.NoError(t, r.Replay(func(uint64, []byte) error { n++; return nil }))
			require.NoError(t, r.Close())
			require.Equal(t, tc.survive, n)
		})
	}
}
