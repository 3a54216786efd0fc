package local

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/backendtest"
)

func newLocal(t testing.TB, dir string) *Backend {
	t.Helper()
	b, err := New(Config{Path: dir}, log.NewNopLogger())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	return b
}

func TestAcceptance(t *testing.T) {
	backendtest.AcceptanceTest(t, func(t testing.TB) backend.Backend {
		return newLocal(t, t.TempDir())
	})
}

func TestAcceptanceInstrumented(t *testing.T) {
	backendtest.AcceptanceTest(t, func(t testing.TB) backend.Backend {
		return backend.Instrument(newLocal(t, t.TempDir()), "local", nil)
	})
}

func TestConfig(t *testing.T) {
	require.Error(t, (&Config{}).Validate())
	_, err := New(Config{}, nil)
	require.Error(t, err)
	// A file where the directory should be.
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err = New(Config{Path: file}, nil)
	require.Error(t, err)
}

func TestFilesOnDisk(t *testing.T) {
	dir := t.TempDir()
	b := newLocal(t, dir)
	ctx := context.Background()
	require.NoError(t, b.Put(ctx, "t/blk/meta.json", strings.NewReader("{}"), 2))
	data, err := os.ReadFile(filepath.Join(dir, "t", "blk", "meta.json"))
	require.NoError(t, err)
	require.Equal(t, "{}", string(data))
	entries, err := os.ReadDir(filepath.Join(dir, "t", "blk"))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")
}

func TestTempFilesHiddenAndCleaned(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	{
		b := newLocal(t, dir)
		require.NoError(t, b.Put(ctx, "t/blk/meta.json", strings.NewReader("{}"), 2))
	}
	// Crash debris: an old and a fresh temporary file, in a block directory
	// and in a directory holding nothing else.
	stale := filepath.Join(dir, "t", "blk", tempPrefix+"0123456789abcdef")
	fresh := filepath.Join(dir, "t", "blk", tempPrefix+"fedcba9876543210")
	lonely := filepath.Join(dir, "t", "crashed", tempPrefix+"00")
	require.NoError(t, os.MkdirAll(filepath.Dir(lonely), 0o755))
	for _, p := range []string{stale, fresh, lonely} {
		require.NoError(t, os.WriteFile(p, []byte("partial"), 0o644))
	}
	old := time.Now().Add(-2 * staleTempAge)
	require.NoError(t, os.Chtimes(stale, old, old))
	require.NoError(t, os.Chtimes(lonely, old, old))

	b := newLocal(t, dir)
	_, err := os.Stat(stale)
	require.ErrorIs(t, err, os.ErrNotExist, "stale temp file removed")
	_, err = os.Stat(lonely)
	require.ErrorIs(t, err, os.ErrNotExist, "stale temp file removed")
	_, err = os.Stat(fresh)
	require.NoError(t, err, "fresh temp file may belong to a live writer")

	keys, err := b.List(ctx, "t/blk")
	require.NoError(t, err)
	require.Equal(t, []string{"t/blk/meta.json"}, keys)
	// "crashed" holds no object, so it is not listed.
	keys, err = b.List(ctx, "t")
	require.NoError(t, err)
	require.Equal(t, []string{"t/blk/"}, keys)
}

func TestNoEscape(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	b := newLocal(t, dir)
	ctx := context.Background()
	require.NoError(t, os.WriteFile(filepath.Join(parent, "secret"), []byte("s"), 0o644))
	// A symlink planted inside the store must not lead out of it.
	require.NoError(t, os.Symlink(parent, filepath.Join(dir, "link")))
	_, err := b.Get(ctx, "link/secret")
	require.Error(t, err)
	err = b.Put(ctx, "link/evil", strings.NewReader("x"), 1)
	require.Error(t, err)
	_, err = os.Stat(filepath.Join(parent, "evil"))
	require.ErrorIs(t, err, os.ErrNotExist)
	for _, key := range []string{"../secret", "a/../../secret"} {
		_, err := b.Get(ctx, key)
		require.ErrorIs(t, err, backend.ErrInvalidKey)
	}
}

// TestGetSurvivesReplace pins the atomic-rename property readers rely on: an
// open Get keeps the old bytes while Put replaces the key.
func TestGetSurvivesReplace(t *testing.T) {
	b := newLocal(t, t.TempDir())
	ctx := context.Background()
	old := bytes.Repeat([]byte("o"), 100_000)
	require.NoError(t, b.Put(ctx, "k", bytes.NewReader(old), int64(len(old))))
	rc, err := b.Get(ctx, "k")
	require.NoError(t, err)
	require.NoError(t, b.Put(ctx, "k", strings.NewReader("new"), 3))
	require.NoError(t, b.Delete(ctx, "k"))
	buf := new(bytes.Buffer)
	_, err = buf.ReadFrom(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	require.Equal(t, old, buf.Bytes())
}

func TestPutOverDirectoryFails(t *testing.T) {
	b := newLocal(t, t.TempDir())
	ctx := context.Background()
	require.NoError(t, b.Put(ctx, "a/b", strings.NewReader("x"), 1))
	require.Error(t, b.Put(ctx, "a", strings.NewReader("x"), 1), "a is a directory")
	require.Error(t, b.Put(ctx, "a/b/c", strings.NewReader("x"), 1), "a/b is an object")
	keys, err := b.List(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, []string{"a/b"}, keys)
}

// TestDeleteRacesPut: Delete removes emptied directories while Puts create
// files in them; every Put must still succeed.
func TestDeleteRacesPut(t *testing.T) {
	b := newLocal(t, t.TempDir())
	ctx := context.Background()
	errs := make(chan error, 2)
	go func() {
		for i := range 300 {
			if err := b.Put(ctx, fmt.Sprintf("d/e/p%d", i), strings.NewReader("x"), 1); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	go func() {
		for i := range 300 {
			key := fmt.Sprintf("d/e/q%d", i)
			if err := b.Put(ctx, key, strings.NewReader("y"), 1); err != nil {
				errs <- err
				return
			}
			if err := b.Delete(ctx, key); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
	keys, err := b.List(ctx, "d/e")
	require.NoError(t, err)
	require.Len(t, keys, 300)
}
