package vfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// FS is the set of file-system operations the WAL and the local backend use.
// Names are as the implementation documents: OS takes operating-system paths,
// Root and crashfs names relative to their root (crashfs also accepts a
// leading "/"). Implementations are safe for concurrent use.
type FS interface {
	// OpenFile opens name with os.OpenFile's flags and permission. Opening
	// a directory read-only gives a handle for ReadDir and Sync.
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// Mkdir creates one directory; its parent must exist.
	Mkdir(name string, perm fs.FileMode) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// Rename renames a file, replacing newname if it exists.
	Rename(oldname, newname string) error
	// Stat follows symbolic links; Lstat does not.
	Stat(name string) (fs.FileInfo, error)
	Lstat(name string) (fs.FileInfo, error)
	// ReadDir lists a directory, sorted by name.
	ReadDir(name string) ([]fs.DirEntry, error)
}

// File is an open file or directory. *os.File implements it.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Closer
	// Sync is fsync(2): on a file it makes the data written so far durable,
	// on a directory the names created, renamed and removed in it so far.
	Sync() error
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
	// ReadDir reads the entries of a directory handle as *os.File does.
	ReadDir(n int) ([]fs.DirEntry, error)
}

var _ File = (*os.File)(nil)

// OS is the operating system's file system; names are paths.
type OS struct{}

var _ FS = OS{}

// OpenFile implements FS.
func (OS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // not a typed nil in an interface
	}
	return f, nil
}

// Mkdir implements FS.
func (OS) Mkdir(name string, perm fs.FileMode) error { return os.Mkdir(name, perm) }

// Remove implements FS.
func (OS) Remove(name string) error { return os.Remove(name) }

// Rename implements FS.
func (OS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// Stat implements FS.
func (OS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// Lstat implements FS.
func (OS) Lstat(name string) (fs.FileInfo, error) { return os.Lstat(name) }

// ReadDir implements FS.
func (OS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }

// Root is the directory of an *os.Root; names are relative to it ("." is the
// root itself) and can never reach outside it, symbolic links included.
type Root struct{ R *os.Root }

var _ FS = Root{}

// OpenFile implements FS.
func (r Root) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := r.R.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Mkdir implements FS.
func (r Root) Mkdir(name string, perm fs.FileMode) error { return r.R.Mkdir(name, perm) }

// Remove implements FS.
func (r Root) Remove(name string) error { return r.R.Remove(name) }

// Rename implements FS.
func (r Root) Rename(oldname, newname string) error { return r.R.Rename(oldname, newname) }

// Stat implements FS.
func (r Root) Stat(name string) (fs.FileInfo, error) { return r.R.Stat(name) }

// Lstat implements FS.
func (r Root) Lstat(name string) (fs.FileInfo, error) { return r.R.Lstat(name) }

// ReadDir implements FS.
func (r Root) ReadDir(name string) ([]fs.DirEntry, error) {
	return fs.ReadDir(r.R.FS(), name)
}

// SyncDir fsyncs directory dir, making the creations, renames and removals
// of names in it durable.
func SyncDir(fsys FS, dir string) error {
	d, err := fsys.OpenFile(dir, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// MkdirAll creates dir and any missing parents, like os.MkdirAll, and
// returns the directories it created, parents first. Paths are split with
// filepath (on the slash-separated names crashfs and Root use, that is the
// same thing on every Unix).
func MkdirAll(fsys FS, dir string, perm fs.FileMode) ([]string, error) {
	if fi, err := fsys.Stat(dir); err == nil {
		if fi.IsDir() {
			return nil, nil
		}
		return nil, &fs.PathError{Op: "mkdir", Path: dir, Err: fs.ErrExist}
	}
	var created []string
	if parent := filepath.Dir(dir); parent != dir && parent != "." && parent != string(filepath.Separator) {
		c, err := MkdirAll(fsys, parent, perm)
		if err != nil {
			return nil, err
		}
		created = c
	}
	if err := fsys.Mkdir(dir, perm); err != nil {
		// Lost a race with another creator: fine if it is a directory now.
		if fi, serr := fsys.Lstat(dir); serr == nil && fi.IsDir() {
			return created, nil
		}
		return nil, err
	}
	return append(created, dir), nil
}

// MkdirAllDurable is MkdirAll followed by a SyncDir of the parent of every
// directory it created, so that the new directories survive power loss.
func MkdirAllDurable(fsys FS, dir string, perm fs.FileMode) error {
	created, err := MkdirAll(fsys, dir, perm)
	if err != nil {
		return err
	}
	// Deepest first: once a parent's entry is durable the child's must be
	// too, and fsyncing bottom-up never exposes a durable entry whose
	// directory is empty on disk.
	for i := len(created) - 1; i >= 0; i-- {
		if err := SyncDir(fsys, filepath.Dir(created[i])); err != nil {
			return err
		}
	}
	return nil
}
