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
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/rubatodb/rubato/pkg/backend"
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
	root   *os.Root
	logger log.Logger
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
	if err := os.MkdirAll(cfg.Path, 0o755); err != nil {
		return nil, fmt.Errorf("local backend: create %s: %w", cfg.Path, err)
	}
	root, err := os.OpenRoot(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("local backend: open %s: %w", cfg.Path, err)
	}
	b := &Backend{root: root, logger: logger}
	if err := b.removeStaleTemps(time.Now().Add(-staleTempAge)); err != nil {
		return nil, errors.Join(fmt.Errorf("local backend: clean %s: %w", cfg.Path, err), root.Close())
	}
	return b, nil
}

func isTemp(name string) bool { return strings.Contains(name, `\`) }

// removeStaleTemps deletes temporary files last modified before cutoff.
func (b *Backend) removeStaleTemps(cutoff time.Time) error {
	return fs.WalkDir(b.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed concurrently
			}
			return err
		}
		if d.IsDir() || !isTemp(d.Name()) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil //nolint:nilerr // gone meanwhile
		}
		if info.ModTime().Before(cutoff) {
			if err := b.root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			level.Info(b.logger).Log("msg", "removed stale temporary file", "file", p)
		}
		return nil
	})
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
	if err := b.root.Rename(tmp, key); err != nil {
		return errors.Join(fmt.Errorf("put %q: %w", key, err), b.removeQuiet(tmp))
	}
	if err := b.syncDir(dir); err != nil {
		return fmt.Errorf("put %q: sync directory: %w", key, err)
	}
	return nil
}

// createTemp makes a fresh temporary file in dir, creating dir as needed.
func (b *Backend) createTemp(dir string) (*os.File, string, error) {
	var lastErr error
	for range mkdirRetries {
		if dir != "." {
			if err := b.root.MkdirAll(dir, 0o755); err != nil {
				return nil, "", err
			}
		}
		tmp := path.Join(dir, tempPrefix+randomSuffix())
		f, err := b.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			return f, tmp, nil
		}
		// A concurrent Delete may have removed dir while it was empty; a
		// name clash is astronomically unlikely but also worth a retry.
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrExist) {
			return nil, "", err
		}
		lastErr = err
	}
	return nil, "", lastErr
}

// writeTemp copies the body into f, checks its length, fsyncs and closes f.
func writeTemp(ctx context.Context, f *os.File, r io.Reader, size int64) error {
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
	if err := b.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove temporary file: %w", err)
	}
	return nil
}

func (b *Backend) syncDir(dir string) error {
	d, err := b.root.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// openFile opens key for reading; a missing key or a directory is ErrNotFound.
func (b *Backend) openFile(ctx context.Context, op, key string) (*os.File, int64, error) {
	if err := backend.ValidateKey(key); err != nil {
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("%s %q: %w", op, key, err)
	}
	f, err := b.root.Open(key)
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

// Get implements backend.Backend. The returned *os.File keeps the object's
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
	info, err := b.root.Stat(key)
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

func (b *Backend) readDir(dir string) ([]fs.DirEntry, error) {
	d, err := b.root.Open(dir)
	if err != nil {
		return nil, err
	}
	entries, err := d.ReadDir(-1)
	return entries, errors.Join(err, d.Close())
}

// hasObject reports whether dir holds an object at any depth. It stops at the
// first one, so for a normal block directory it reads one directory chunk.
func (b *Backend) hasObject(ctx context.Context, dir string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	d, err := b.root.Open(dir)
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
	info, err := b.root.Lstat(key)
	if err != nil {
		if notFound(err) {
			return nil
		}
		return fmt.Errorf("delete %q: %w", key, err)
	}
	if info.IsDir() {
		return nil // a "directory", not an object: nothing to delete
	}
	if err := b.root.Remove(key); err != nil && !notFound(err) {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	// Remove the directories this left empty; rmdir fails on the first one
	// that still holds something, which ends the walk.
	for d := parent(key); d != "."; d = path.Dir(d) {
		if err := b.root.Remove(d); err != nil {
			break
		}
	}
	return nil
}

// Close implements backend.Backend.
func (b *Backend) Close() error { return b.root.Close() }

// Path returns the directory the backend stores objects in.
func (b *Backend) Path() string { return filepath.Clean(b.root.Name()) }

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
