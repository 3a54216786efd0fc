package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/go-kit/log"
	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/internal/vfs/crashfs"
)

// keyState is what a key must hold after a power cut: the value of the last
// acknowledged Put (nil: absent, after a Delete or never written), or, if an
// operation on it was in flight at the cut, possibly that one's value.
type keyState struct {
	committed []byte
	inflight  []byte
	pending   bool
}

// TestPowerLoss runs Puts and Deletes from several goroutines on crashfs,
// cuts the power at a random file-system operation, writes what survives
// into a real directory, opens a real backend there and checks that every
// acknowledged Put is there byte for byte, every acknowledged Delete stays
// deleted, and nothing else (no torn object, no temporary file) shows.
// New tenant and block directories are created all along, so a Put must
// make its directory's own name durable too.
func TestPowerLoss(t *testing.T) {
	seeds := 100
	if testing.Short() {
		seeds = 10
	}
	for _, mode := range []crashfs.Mode{crashfs.LoseUnsynced, crashfs.KeepSome} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			for seed := range uint64(seeds) {
				powerLossRun(t, mode, seed)
				if t.Failed() {
					t.Fatalf("seed %d failed", seed)
				}
			}
			t.Logf("%d power cuts", seeds)
		})
	}
}

func powerLossRun(t *testing.T, mode crashfs.Mode, seed uint64) {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 7))
	disk := crashfs.New()
	b, err := NewFS(disk, log.NewNopLogger())
	require.NoError(t, err)
	disk.CutAtOp(disk.Ops() + 1 + int64(rng.IntN(300)))

	const writers = 3
	states := make([]map[string]*keyState, writers)
	var wg sync.WaitGroup
	for g := range writers {
		states[g] = map[string]*keyState{}
		wseed := rng.Uint64()
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(wseed, uint64(g)))
			for v := 0; ; v++ {
				// Keys of writer g only: tenant g, a few blocks, a few objects.
				key := fmt.Sprintf("t%d/b%d/o%d", g, rng.IntN(6), rng.IntN(3))
				if rng.IntN(8) == 0 {
					key = fmt.Sprintf("t%d/o%d", g, rng.IntN(2))
				}
				st := states[g][key]
				if st == nil {
					st = &keyState{}
					states[g][key] = st
				}
				var val []byte
				if st.committed == nil || rng.IntN(5) != 0 {
					val = fmt.Appendf(nil, "%s v%d ", key, v)
					val = append(val, bytes.Repeat([]byte{byte(v)}, rng.IntN(3000))...)
				}
				st.inflight, st.pending = val, true
				var err error
				if val == nil {
					err = b.Delete(ctx, key)
				} else {
					err = b.Put(ctx, key, bytes.NewReader(val), int64(len(val)))
				}
				if err != nil {
					require.ErrorIs(t, err, crashfs.ErrPowerCut)
					return
				}
				st.committed, st.inflight, st.pending = val, nil, false
			}
		})
	}
	wg.Wait()
	require.NoError(t, b.Close())

	dir := t.TempDir()
	require.NoError(t, disk.Recover(mode, seed).WriteTo(dir))
	r, err := New(Config{Path: dir}, log.NewNopLogger())
	require.NoError(t, err)
	defer func() { require.NoError(t, r.Close()) }()

	where := fmt.Sprintf("seed %d", seed)
	present := map[string]bool{}
	for _, keys := range states {
		for key, st := range keys {
			got, err := get(ctx, r, key)
			if err != nil {
				require.ErrorIs(t, err, backend.ErrNotFound, where)
				got = nil
			} else {
				present[key] = true
			}
			switch {
			case bytes.Equal(got, st.committed) && (got == nil) == (st.committed == nil):
			case st.pending && bytes.Equal(got, st.inflight) && (got == nil) == (st.inflight == nil):
			default:
				t.Fatalf("%s: key %s holds %s; want %s (acknowledged)%s", where, key, describe(got), describe(st.committed),
					map[bool]string{true: " or " + describe(st.inflight) + " (in flight)", false: ""}[st.pending])
			}
		}
	}
	// List shows exactly the objects present, no temporary file.
	var listed []string
	var walk func(d string)
	walk = func(d string) {
		entries, err := r.List(ctx, d)
		require.NoError(t, err, where)
		for _, e := range entries {
			if strings.HasSuffix(e, "/") {
				walk(e)
			} else {
				listed = append(listed, e)
			}
		}
	}
	walk("")
	var want []string
	for k := range present {
		want = append(want, k)
	}
	sort.Strings(want)
	slices.Sort(listed)
	require.Equal(t, want, listed, where)
}

func get(ctx context.Context, b *Backend, key string) ([]byte, error) {
	rc, err := b.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(rc)
	return data, errors.Join(err, rc.Close())
}

func describe(v []byte) string {
	if v == nil {
		return "nothing"
	}
	head, _, _ := bytes.Cut(v, []byte(" v"))
	tag := v[len(head):min(len(v), len(head)+8)]
	return fmt.Sprintf("%d bytes %q", len(v), string(head)+string(bytes.TrimRight(tag, "\x00")))
}
