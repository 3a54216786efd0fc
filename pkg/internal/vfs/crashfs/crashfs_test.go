package crashfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/pkg/internal/vfs"
)

func write(t *testing.T, c *FS, name, data string, sync bool) vfs.File {
	t.Helper()
	f, err := c.OpenFile(name, os.O_WRONLY|os.O_CREATE, 0o640)
	require.NoError(t, err)
	_, err = f.Write([]byte(data))
	require.NoError(t, err)
	if sync {
		require.NoError(t, f.Sync())
	}
	return f
}

func read(t *testing.T, c *FS, name string) (string, bool) {
	t.Helper()
	f, err := c.OpenFile(name, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	require.NoError(t, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	require.NoError(t, err)
	return string(b), true
}

// TestModel checks each rule of the model in doc.go under LoseUnsynced.
func TestModel(t *testing.T) {
	for _, tc := range []struct {
		name   string
		run    func(t *testing.T, c *FS)
		file   string
		want   string
		exists bool
	}{
		{"unsynced name of a synced file is lost", func(t *testing.T, c *FS) {
			write(t, c, "a", "data", true)
		}, "a", "", false},
		{"synced name of an unsynced file keeps no data", func(t *testing.T, c *FS) {
			write(t, c, "a", "data", false)
			require.NoError(t, vfs.SyncDir(c, "."))
		}, "a", "", true},
		{"file and directory synced survive", func(t *testing.T, c *FS) {
			write(t, c, "a", "data", true)
			require.NoError(t, vfs.SyncDir(c, "/"))
		}, "a", "data", true},
		{"writes after the last fsync are lost", func(t *testing.T, c *FS) {
			f := write(t, c, "a", "data", true)
			require.NoError(t, vfs.SyncDir(c, "."))
			_, err := f.Write([]byte("more"))
			require.NoError(t, err)
		}, "a", "data", true},
		{"unsynced truncation is lost", func(t *testing.T, c *FS) {
			f := write(t, c, "a", "data", true)
			require.NoError(t, vfs.SyncDir(c, "."))
			require.NoError(t, f.Truncate(1))
			_, err := f.Write([]byte("xyz"))
			require.NoError(t, err)
		}, "a", "data", true},
		{"rename without directory fsync keeps the old binding", func(t *testing.T, c *FS) {
			write(t, c, "a", "old", true)
			require.NoError(t, vfs.SyncDir(c, "."))
			write(t, c, "tmp", "new", true)
			require.NoError(t, c.Rename("tmp", "a"))
		}, "a", "old", true},
		{"rename with directory fsync", func(t *testing.T, c *FS) {
			write(t, c, "a", "old", true)
			write(t, c, "tmp", "new", true)
			require.NoError(t, c.Rename("tmp", "a"))
			require.NoError(t, vfs.SyncDir(c, "."))
		}, "a", "new", true},
		{"unsynced remove is undone", func(t *testing.T, c *FS) {
			write(t, c, "a", "data", true)
			require.NoError(t, vfs.SyncDir(c, "."))
			require.NoError(t, c.Remove("a"))
		}, "a", "data", true},
		{"file in a new directory whose parent was not fsynced is lost", func(t *testing.T, c *FS) {
			_, err := vfs.MkdirAll(c, "d/e", 0o750)
			require.NoError(t, err)
			write(t, c, "d/e/a", "data", true)
			require.NoError(t, vfs.SyncDir(c, "d/e"))
		}, "d/e/a", "", false},
		{"MkdirAllDurable makes new directories durable", func(t *testing.T, c *FS) {
			require.NoError(t, vfs.MkdirAllDurable(c, "d/e", 0o750))
			write(t, c, "d/e/a", "data", true)
			require.NoError(t, vfs.SyncDir(c, "d/e"))
		}, "d/e/a", "data", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New()
			tc.run(t, c)
			c.Cut()
			_, err := c.OpenFile("x", os.O_RDONLY, 0)
			require.ErrorIs(t, err, ErrPowerCut)
			r := c.Recover(LoseUnsynced, 1)
			got, ok := read(t, r, tc.file)
			require.Equal(t, tc.exists, ok)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestKeepSome checks that KeepSome keeps, over seeds, every allowed
// outcome and nothing else: a prefix of the pending appends, maybe with a
// zeroed end, and a prefix of the pending name changes.
func TestKeepSome(t *testing.T) {
	seen := map[string]bool{}
	for seed := range uint64(200) {
		c := New()
		f := write(t, c, "a", "ab", true)
		require.NoError(t, vfs.SyncDir(c, "."))
		_, err := f.Write([]byte("cd"))
		require.NoError(t, err)
		write(t, c, "b", "x", true)
		require.NoError(t, c.Rename("b", "c"))
		r := c.Recover(KeepSome, seed)
		a, ok := read(t, r, "a")
		require.True(t, ok)
		require.Contains(t, []string{"ab", "abc", "abcd", "ab\x00", "ab\x00\x00", "abc\x00"}, a)
		_, b := read(t, r, "b")
		_, cc := read(t, r, "c")
		require.False(t, b && cc, "rename kept both names")
		seen[a] = true
		seen[map[bool]string{true: "b", false: "-"}[b]+map[bool]string{true: "c", false: "-"}[cc]] = true
	}
	for _, want := range []string{"ab", "abc", "abcd", "--", "b-", "-c"} {
		require.True(t, seen[want], "outcome %q never drawn", want)
	}
}

func TestCutAtOp(t *testing.T) {
	c := New()
	c.CutAtOp(3)
	f := write(t, c, "a", "x", false) // ops 1 (create), 2 (write)
	require.False(t, c.IsCut())
	require.ErrorIs(t, f.Sync(), ErrPowerCut) // op 3 is the cut
	require.True(t, c.IsCut())
	require.EqualValues(t, 2, c.Ops())
}

func TestWriteTo(t *testing.T) {
	c := New()
	require.NoError(t, vfs.MkdirAllDurable(c, "d", 0o750))
	write(t, c, "d/a", "data", true)
	require.NoError(t, vfs.SyncDir(c, "d"))
	dir := t.TempDir()
	require.NoError(t, c.Recover(LoseUnsynced, 0).WriteTo(dir))
	b, err := os.ReadFile(filepath.Join(dir, "d", "a"))
	require.NoError(t, err)
	require.Equal(t, "data", string(b))
}
