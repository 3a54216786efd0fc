package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/internal/vfs"
)

const (
	// tempPrefix starts every temporary file name. It holds a backslash,
	// which ValidateKey rejects, so no object can be named like a temp file.
	tempPrefix = `tmp\`
	// staleTempAge is how old an untouched temporary file must be before New
	// removes it as crash debris.
	staleTempAge = time.Hour
	// mkdirRetries bounds how often Put recreates a directory that a
	// concurrent Delete removed while it was empty.
	mkdirRetries = 10
)

// Backend stores objects as files under one directory.
type Backend struct {
	fsys   vfs.FS // rooted at the backend's directory: "." is it
	path   string
	close  func() error
	logger log.Logger

	// durableDirs holds the directories (as "a/b") known to exist with
	// every name from the root down to them durable, so that Put fsyncs
	// the ancestors of a directory only the first time it writes there.
	// Delete forgets a directory before it removes it.
	durableDirs sync.Map
}

var _ backend.Backend = (*Backend)(nil)

// New opens (creating it if needed) the directory cfg.Path and removes stale
// temporary files left there by a crash.
func New(cfg Config, logger log.Logger) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = log.NewNopLogger()
	}
	if err := vfs.MkdirAllDurable(vfs.OS{}, cfg.Path, 0o755); err != nil {
		return nil, fmt.Errorf("local backend: create %s: %w", cfg.Path, err)
	}
	root, err := os.OpenRoot(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("local backend: open %s: %w", cfg.Path, err)
	}
	b, err := newBackend(vfs.Root{R: root}, filepath.Clean(root.Name()), root.Close, logger)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("local backend: %s: %w", cfg.Path, err), root.Close())
	}
	return b, nil
}

// NewFS is New on a file system whose root (".") is the backend's
// directory, which must exist: tests use crashfs to simulate power loss.
func NewFS(fsys vfs.FS, logger log.Logger) (*Backend, error) {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	b, err := newBackend(fsys, ".", func() error { return nil }, logger)
	if err != nil {
		return nil, fmt.Errorf("local backend: %w", err)
	}
	return b, nil
}

func newBackend(fsys vfs.FS, path string, closeFn func() error, logger log.Logger) (*Backend, error) {
	b := &Backend{fsys: fsys, path: path, close: closeFn, logger: logger}
	if err := b.removeStaleTemps(".", time.Now().Add(-staleTempAge)); err != nil {
		return nil, fmt.Errorf("clean: %w", err)
	}
	return b, nil
}

func isTemp(name string) bool { return strings.Contains(name, `\`) }

// removeStaleTemps deletes temporary files under dir last modified before
// cutoff. A temporary file left behind is never renamed afterwards, so
// whether its removal survives a power cut does not matter: no fsync.
func (b *Backend) removeStaleTemps(dir string, cutoff time.Time) error {
	entries, err := b.fsys.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed concurrently
		}
		return err
	}
	for _, d := range entries {
		p := path.Join(dir, d.Name())
		if d.IsDir() {
			if err := b.removeStaleTemps(p, cutoff); err != nil {
				return err
			}
			continue
		}
		if !isTemp(d.Name()) {
			continue
		}
		info, err := d.Info()
		if err != nil {
			continue // gone meanwhile
		}
		if info.ModTime().Before(cutoff) {
			if err := b.fsys.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			level.Info(b.logger).Log("msg", "removed stale temporary file", "file", p)
		}
	}
	return nil
}

// parent returns the directory of key in os.Root notation ("." for the root).
func parent(key string) string { return path.Dir(key) }

func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// notFound reports errors that mean "no object under this key": the file is
// missing, or a path element is a file rather than a directory.
func notFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := backend.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	dir := parent(key)
	f, tmp, err := b.createTemp(dir)
	if err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	if err := writeTemp(ctx, f, r, size); err != nil {
		return errors.Join(fmt.Errorf("put %q: %w", key, err), b.removeQuiet(tmp))
	}
	if err := ctx.Err(); err != nil {
		return errors.Join(fmt.Errorf("put %q: %w", key, err), b.removeQuiet(tmp))
	}
	if err := b.fsys.Rename(tmp, key); err != nil {
		return errors.Join(fmt.Errorf("put %q: %w", key, err), b.removeQuiet(tmp))
	}
	if err := b.syncDir(dir); err != nil {
		return fmt.Errorf("put %q: sync directory: %w", key, err)
	}
	return nil
}

// createTemp makes a fresh temporary file in dir, creating dir as needed.
func (b *Backend) createTemp(dir string) (vfs.File, string, error) {
	var lastErr error
	for range mkdirRetries {
		if err := b.ensureDir(dir); err != nil {
			return nil, "", err
		}
		tmp := path.Join(dir, tempPrefix+randomSuffix())
		f, err := b.fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			return f, tmp, nil
		}
		// A concurrent Delete may have removed dir while it was empty; a
		// name clash is astronomically unlikely but also worth a retry.
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrExist) {
			return nil, "", err
		}
		// dir or an ancestor is gone: make them durable again.
		for d := dir; d != "."; d = path.Dir(d) {
			b.durableDirs.Delete(d)
		}
		lastErr = err
	}
	return nil, "", lastErr
}

// ensureDir creates dir and its parents as needed and makes every name on
// the way durable, fsyncing each ancestor, deepest first. Without this the
// fsync of dir after a rename would make the object's name durable in a
// directory whose own name a power cut could still take away. It is done
// again for a directory not yet known durable even if it exists: it may
// have been created by a concurrent Put that has not fsynced it yet.
func (b *Backend) ensureDir(dir string) error {
	if dir == "." {
		return nil
	}
	if _, ok := b.durableDirs.Load(dir); ok {
		return nil
	}
	if _, err := vfs.MkdirAll(b.fsys, dir, 0o755); err != nil {
		return err
	}
	// Up to the first ancestor already known durable: its own name, and
	// those above it, are.
	var synced []string
	for d := dir; d != "."; d = path.Dir(d) {
		if _, ok := b.durableDirs.Load(d); ok {
			break
		}
		if err := b.syncDir(path.Dir(d)); err != nil {
			return fmt.Errorf("sync directory: %w", err)
		}
		synced = append(synced, d)
	}
	for _, d := range synced {
		b.durableDirs.Store(d, struct{}{})
	}
	return nil
}

// writeTemp copies the body into f, checks its length, fsyncs and closes f.
func writeTemp(ctx context.Context, f vfs.File, r io.Reader, size int64) error {
	src := r
	if size >= 0 {
		// One byte more than announced reveals a body that is too long.
		src = io.LimitReader(r, size+1)
	}
	n, err := io.Copy(f, &ctxReader{ctx: ctx, r: src})
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("body has %d bytes or more, want %d", n, size)
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func (b *Backend) removeQuiet(name string) error {
	if err := b.fsys.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove temporary file: %w", err)
	}
	return nil
}

func (b *Backend) syncDir(dir string) error { return vfs.SyncDir(b.fsys, dir) }

// openFile opens key for reading; a missing key or a directory is ErrNotFound.
func (b *Backend) openFile(ctx context.Context, op, key string) (vfs.File, int64, error) {
	if err := backend.ValidateKey(key); err != nil {
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("%s %q: %w", op, key, err)
	}
	f, err := b.fsys.OpenFile(key, os.O_RDONLY, 0)
	if err != nil {
		if notFound(err) {
			return nil, 0, fmt.Errorf("%s %q: %w", op, key, backend.ErrNotFound)
		}
		return nil, 0, fmt.Errorf("%s %q: %w", op, key, err)
	}
	info, err := f.Stat()
	if err != nil {
		return nil, 0, errors.Join(fmt.Errorf("%s %q: %w", op, key, err), f.Close())
	}
	if !info.Mode().IsRegular() {
		return nil, 0, errors.Join(fmt.Errorf("%s %q: %w", op, key, backend.ErrNotFound), f.Close())
	}
	return f, info.Size(), nil
}

// Get implements backend.Backend. The returned open file keeps the object's
// bytes readable even if a later Put replaces or Delete removes the key.
func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	f, _, err := b.openFile(ctx, "get", key)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// GetRange implements backend.Backend.
func (b *Backend) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	f, size, err := b.openFile(ctx, "get range", key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := backend.CheckRange(off, length, size); err != nil {
		return nil, fmt.Errorf("get range %q: %w", key, err)
	}
	buf := make([]byte, length)
	n, err := f.ReadAt(buf, off)
	if n == len(buf) {
		return buf, nil // ReadAt may report io.EOF along with the last byte
	}
	if err == nil || errors.Is(err, io.EOF) {
		// Put swaps whole files by rename, so an open file never shrinks
		// through this package: this is damage from outside.
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("get range %q: %w", key, err)
}

// Size implements backend.Backend.
func (b *Backend) Size(ctx context.Context, key string) (int64, error) {
	if err := backend.ValidateKey(key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("size %q: %w", key, err)
	}
	info, err := b.fsys.Stat(key)
	if err != nil {
		if notFound(err) {
			return 0, fmt.Errorf("size %q: %w", key, backend.ErrNotFound)
		}
		return 0, fmt.Errorf("size %q: %w", key, err)
	}
	if !info.Mode().IsRegular() {
		return 0, fmt.Errorf("size %q: %w", key, backend.ErrNotFound)
	}
	return info.Size(), nil
}

// List implements backend.Backend.
func (b *Backend) List(ctx context.Context, dir string) ([]string, error) {
	if err := backend.ValidateDir(dir); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %q: %w", dir, err)
	}
	dir = strings.TrimSuffix(dir, "/")
	fsDir, prefix := ".", ""
	if dir != "" {
		fsDir, prefix = dir, dir+"/"
	}
	entries, err := b.readDir(fsDir)
	if err != nil {
		if notFound(err) {
			return []string{}, nil
		}
		return nil, fmt.Errorf("list %q: %w", dir, err)
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		switch {
		case isTemp(name):
		case e.IsDir():
			full := path.Join(fsDir, name)
			has, err := b.hasObject(ctx, full)
			if err != nil {
				return nil, fmt.Errorf("list %q: %w", dir, err)
			}
			if has {
				out = append(out, prefix+name+"/")
			}
		case e.Type().IsRegular():
			out = append(out, prefix+name)
		}
	}
	// Sort after adding "/": "b/" sorts after "b.json" although "b" sorts before.
	sort.Strings(out)
	return out, nil
}

// ListObjects implements backend.Backend: the files' sizes and modification
// times. Put renames a fresh file into place, so the time is the end of the
// Put.
func (b *Backend) ListObjects(ctx context.Context, dir string) ([]backend.ObjectInfo, error) {
	if err := backend.ValidateDir(dir); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list objects %q: %w", dir, err)
	}
	dir = strings.TrimSuffix(dir, "/")
	fsDir, prefix := ".", ""
	if dir != "" {
		fsDir, prefix = dir, dir+"/"
	}
	entries, err := b.readDir(fsDir)
	if err != nil {
		if notFound(err) {
			return []backend.ObjectInfo{}, nil
		}
		return nil, fmt.Errorf("list objects %q: %w", dir, err)
	}
	out := make([]backend.ObjectInfo, 0, len(entries))
	for _, e := range entries {
		if isTemp(e.Name()) || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			if notFound(err) {
				continue // deleted meanwhile
			}
			return nil, fmt.Errorf("list objects %q: %w", dir, err)
		}
		out = append(out, backend.ObjectInfo{Key: prefix + e.Name(), Size: info.Size(), LastModified: info.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (b *Backend) readDir(dir string) ([]fs.DirEntry, error) { return b.fsys.ReadDir(dir) }

// hasObject reports whether dir holds an object at any depth. It stops at the
// first one, so for a normal block directory it reads one directory chunk.
func (b *Backend) hasObject(ctx context.Context, dir string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	d, err := b.fsys.OpenFile(dir, os.O_RDONLY, 0)
	if err != nil {
		if notFound(err) {
			return false, nil
		}
		return false, err
	}
	defer d.Close()
	for {
		entries, err := d.ReadDir(64)
		for _, e := range entries {
			switch {
			case isTemp(e.Name()):
			case e.Type().IsRegular():
				return true, nil
			case e.IsDir():
				has, err := b.hasObject(ctx, path.Join(dir, e.Name()))
				if err != nil || has {
					return has, err
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := backend.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	info, err := b.fsys.Lstat(key)
	if err != nil {
		if notFound(err) {
			return nil
		}
		return fmt.Errorf("delete %q: %w", key, err)
	}
	if info.IsDir() {
		return nil // a "directory", not an object: nothing to delete
	}
	if err := b.fsys.Remove(key); err != nil && !notFound(err) {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	// Remove the directories this left empty; rmdir fails on the first one
	// that still holds something, which ends the walk. Forget each before
	// removing it, so that a concurrent Put makes it durable again.
	d := parent(key)
	for ; d != "."; d = path.Dir(d) {
		b.durableDirs.Delete(d) // only an empty directory goes
		if err := b.fsys.Remove(d); err != nil {
			break
		}
	}
	// Make the removal durable: fsync the directory that lost a name (the
	// key's own, or the parent of the highest directory removed), so that
	// a deleted object does not come back after a power cut.
	if err := b.syncDir(d); err != nil && !notFound(err) {
		return fmt.Errorf("delete %q: sync directory: %w", key, err)
	}
	return nil
}

// Close implements backend.Backend.
func (b *Backend) Close() error { return b.close() }

// Path returns the directory the backend stores objects in.
func (b *Backend) Path() string { return b.path }

// ctxReader stops a copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
