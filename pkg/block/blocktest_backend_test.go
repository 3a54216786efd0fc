package block

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/rubatodb/rubato/pkg/backend"
)

// memBackend is a test-only backend.Backend over a map that counts calls
// and records the order of Puts, so tests can pin how many requests a read
// costs and that meta.json is written last.
type memBackend struct {
	mu       sync.Mutex
	objects  map[string][]byte
	puts     []string
	gets     int
	getRange int
	ranges   [][2]int64
}

var _ backend.Backend = (*memBackend)(nil)

func newMemBackend() *memBackend { return &memBackend{objects: map[string][]byte{}} }

func (m *memBackend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := backend.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if size >= 0 && int64(len(data)) != size {
		return fmt.Errorf("put %s: read %d bytes, size says %d", key, len(data), size)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objects[key] = data
	m.puts = append(m.puts, key)
	return nil
}

func (m *memBackend) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gets++
	data, ok := m.objects[key]
	if !ok {
		return nil, fmt.Errorf("%w: %s", backend.ErrNotFound, key)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (m *memBackend) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.getRange++
	m.ranges = append(m.ranges, [2]int64{off, length})
	data, ok := m.objects[key]
	if !ok {
		return nil, fmt.Errorf("%w: %s", backend.ErrNotFound, key)
	}
	if off < 0 || length < 0 || off+length > int64(len(data)) {
		return nil, fmt.Errorf("%w: %s [%d, %d) of %d", backend.ErrOutOfRange, key, off, off+length, len(data))
	}
	return bytes.Clone(data[off : off+length]), nil
}

func (m *memBackend) Size(_ context.Context, key string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.objects[key]
	if !ok {
		return 0, fmt.Errorf("%w: %s", backend.ErrNotFound, key)
	}
	return int64(len(data)), nil
}

func (m *memBackend) List(_ context.Context, dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	prefix := dir
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	seen := map[string]bool{}
	for k := range m.objects {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		rest := k[len(prefix):]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			seen[prefix+rest[:i+1]] = true
		} else {
			seen[k] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

func (m *memBackend) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objects, key)
	return nil
}

func (m *memBackend) Close() error { return nil }

// counts returns the Get and GetRange call counts so far.
func (m *memBackend) counts() (gets, getRanges int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gets, m.getRange
}

func (m *memBackend) putKeys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.puts...)
}

func (m *memBackend) set(key string, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objects[key] = data
}

func (m *memBackend) object(key string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.objects[key]
}
