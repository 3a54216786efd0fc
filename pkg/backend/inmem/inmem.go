package inmem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rubatodb/rubato/pkg/backend"
)

// Backend is an in-memory object store. The zero value is not usable; call New.
type Backend struct {
	mu      sync.RWMutex
	objects map[string]object
}

type object struct {
	data []byte
	mod  time.Time
}

var _ backend.Backend = (*Backend)(nil)

// New returns an empty store.
func New() *Backend {
	return &Backend{objects: map[string]object{}}
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := backend.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	var buf bytes.Buffer
	if size > 0 {
		buf.Grow(int(size))
	}
	src := r
	if size >= 0 {
		// One byte more than announced reveals a body that is too long.
		src = io.LimitReader(r, size+1)
	}
	n, err := buf.ReadFrom(&ctxReader{ctx: ctx, r: src})
	if err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("put %q: body has %d bytes or more, want %d", key, n, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.objects == nil {
		return fmt.Errorf("put %q: backend closed", key)
	}
	b.objects[key] = object{data: buf.Bytes(), mod: time.Now()}
	return nil
}

func (b *Backend) lookup(ctx context.Context, op, key string) ([]byte, error) {
	if err := backend.ValidateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s %q: %w", op, key, err)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	obj, ok := b.objects[key]
	if !ok {
		return nil, fmt.Errorf("%s %q: %w", op, key, backend.ErrNotFound)
	}
	return obj.data, nil
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	data, err := b.lookup(ctx, "get", key)
	if err != nil {
		return nil, err
	}
	// Stored slices are never modified, so the reader may share them.
	return io.NopCloser(bytes.NewReader(data)), nil
}

// GetRange implements backend.Backend.
func (b *Backend) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	data, err := b.lookup(ctx, "get range", key)
	if err != nil {
		return nil, err
	}
	if err := backend.CheckRange(off, length, int64(len(data))); err != nil {
		return nil, fmt.Errorf("get range %q: %w", key, err)
	}
	return bytes.Clone(data[off : off+length]), nil
}

// Size implements backend.Backend.
func (b *Backend) Size(ctx context.Context, key string) (int64, error) {
	data, err := b.lookup(ctx, "size", key)
	if err != nil {
		return 0, err
	}
	return int64(len(data)), nil
}

// List implements backend.Backend.
func (b *Backend) List(ctx context.Context, dir string) ([]string, error) {
	if err := backend.ValidateDir(dir); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %q: %w", dir, err)
	}
	prefix := strings.TrimSuffix(dir, "/")
	if prefix != "" {
		prefix += "/"
	}
	seen := map[string]struct{}{}
	b.mu.RLock()
	for key := range b.objects {
		rest, ok := strings.CutPrefix(key, prefix)
		if !ok {
			continue
		}
		child := key
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			child = prefix + rest[:i+1]
		}
		seen[child] = struct{}{}
	}
	b.mu.RUnlock()
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

// ListObjects implements backend.Backend.
func (b *Backend) ListObjects(ctx context.Context, dir string) ([]backend.ObjectInfo, error) {
	if err := backend.ValidateDir(dir); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list objects %q: %w", dir, err)
	}
	prefix := strings.TrimSuffix(dir, "/")
	if prefix != "" {
		prefix += "/"
	}
	out := []backend.ObjectInfo{}
	b.mu.RLock()
	for key, obj := range b.objects {
		if rest, ok := strings.CutPrefix(key, prefix); ok && !strings.Contains(rest, "/") {
			out = append(out, backend.ObjectInfo{Key: key, Size: int64(len(obj.data)), LastModified: obj.mod})
		}
	}
	b.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := backend.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.objects, key)
	return nil
}

// Close implements backend.Backend.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.objects = nil
	return nil
}

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
