package vfs_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/pkg/internal/vfs"
	"github.com/rubatodb/rubato/pkg/internal/vfs/crashfs"
)

func TestMkdirAllReportsCreated(t *testing.T) {
	base := t.TempDir()
	root, err := os.OpenRoot(base)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, root.Close()) })
	for _, tc := range []struct {
		name string
		fsys vfs.FS
		dir  func(string) string
	}{
		{"os", vfs.OS{}, func(p string) string { return filepath.Join(base, p) }},
		{"root", vfs.Root{R: root}, func(p string) string { return filepath.Join("r", p) }},
		{"crashfs", crashfs.New(), func(p string) string { return "/" + p }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			created, err := vfs.MkdirAll(tc.fsys, tc.dir("a/b/c"), 0o750)
			require.NoError(t, err)
			want := []string{tc.dir("a"), tc.dir("a/b"), tc.dir("a/b/c")}
			if tc.name == "root" {
				want = append([]string{"r"}, want...)
			}
			require.Equal(t, want, created)
			created, err = vfs.MkdirAll(tc.fsys, tc.dir("a/b/d"), 0o750)
			require.NoError(t, err)
			require.Equal(t, []string{tc.dir("a/b/d")}, created)
			created, err = vfs.MkdirAll(tc.fsys, tc.dir("a/b"), 0o750)
			require.NoError(t, err)
			require.Empty(t, created)

			f, err := tc.fsys.OpenFile(tc.dir("a/file"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
			require.NoError(t, err)
			require.NoError(t, f.Close())
			_, err = vfs.MkdirAll(tc.fsys, tc.dir("a/file/x"), 0o750)
			require.Error(t, err, "a file is in the way")
			require.NoError(t, vfs.MkdirAllDurable(tc.fsys, tc.dir("a/e/f"), 0o750))
			require.NoError(t, vfs.SyncDir(tc.fsys, tc.dir("a/e/f")))
		})
	}
}
