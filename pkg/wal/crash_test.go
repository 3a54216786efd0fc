package wal

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/stretchr/testify/require"
)

const (
	crashDirEnv   = "RUBATO_WAL_CRASH_DIR"
	crashRoundEnv = "RUBATO_WAL_CRASH_ROUND"
	crashWriters  = 4
	// Ids are round*crashRoundSpan + writer*crashWriterSpan + i: unique
	// across rounds and writers.
	crashRoundSpan  = 1 << 40
	crashWriterSpan = 1 << 32
)

// TestCrashChild is the child process of TestCrashRecovery; it does nothing
// unless started by it. It appends records with sync policy "always" from
// several goroutines and prints each record's id once Append has returned,
// until it is killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashRecovery")
	}
	round, err := strconv.ParseUint(os.Getenv(crashRoundEnv), 10, 64)
	require.NoError(t, err)
	cfg := testConfig(dir, SyncAlways)
	cfg.SegmentSize = 64 << 10 // rotate often, so kills land in rotations too
	w, err := Open(cfg, log.NewNopLogger(), nil)
	require.NoError(t, err)

	var out sync.Mutex
	var wg sync.WaitGroup
	for g := range uint64(crashWriters) {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(round, g))
			line := make([]byte, 0, 32)
			// Bounded so that an orphaned child ends by itself.
			for i := range uint64(200_000) {
				id := round*crashRoundSpan + g*crashWriterSpan + i
				if _, err := w.Append(makeRecord(id, rng.IntN(3000))); err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(2)
				}
				line = strconv.AppendUint(line[:0], id, 10)
				line = append(line, '\n')
				out.Lock()
				_, err := os.Stdout.Write(line)
				out.Unlock()
				if err != nil {
					os.Exit(3)
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, w.Close())
}

// TestCrashRecovery kills a process appending to the WAL with SIGKILL at
// random moments and checks, after each kill, that Replay returns every
// acknowledged record, whole, and nothing twice. Records that were in
// flight may be there or not, but never torn (checkRecord verifies each).
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	acked := make(map[uint64]bool)
	const rounds = 6
	for round := 1; round <= rounds; round++ {
		ids := runCrashChild(t, dir, round, 50+rng.IntN(3000), time.Duration(rng.IntN(20))*time.Millisecond)
		for _, id := range ids {
			acked[id] = true
		}
		t.Logf("round %d: %d records acknowledged before SIGKILL", round, len(ids))

		w, err := Open(testConfig(dir, SyncAlways), log.NewNopLogger(), nil)
		require.NoError(t, err)
		seen := make(map[uint64]bool)
		require.NoError(t, w.Replay(func(seg uint64, rec []byte) error {
			id, err := checkRecord(rec)
			if err != nil {
				return fmt.Errorf("segment %d: %w", seg, err)
			}
			if seen[id] {
				return fmt.Errorf("record %d replayed twice", id)
			}
			seen[id] = true
			return nil
		}))
		require.NoError(t, w.Close())
		missing := 0
		for id := range acked {
			if !seen[id] {
				missing++
			}
		}
		require.Zero(t, missing, "round %d: %d acknowledged records lost (of %d)", round, missing, len(acked))
	}
}

// runCrashChild starts TestCrashChild, lets it acknowledge at least
// killAfter records (or run out of time), waits extra, kills it with
// SIGKILL and returns the ids it acknowledged.
func runCrashChild(t *testing.T, dir string, round, killAfter int, extra time.Duration) []uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashRoundEnv+"="+strconv.Itoa(round))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	var (
		mu   sync.Mutex
		ids  []uint64
		done = make(chan struct{})
		hit  = make(chan struct{})
	)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			id, err := strconv.ParseUint(sc.Text(), 10, 64)
			if err != nil {
				continue // test framework output
			}
			mu.Lock()
			ids = append(ids, id)
			n := len(ids)
			mu.Unlock()
			if n >= killAfter && !signalled {
				signalled = true
				close(hit)
			}
		}
	}()
	select {
	case <-hit:
	case <-done:
	case <-time.After(30 * time.Second):
	}
	time.Sleep(extra)
	require.NoError(t, cmd.Process.Kill())
	<-done // all acknowledgements the child printed are read
	_ = cmd.Wait()
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, ids, "child acknowledged nothing")
	return ids
}
