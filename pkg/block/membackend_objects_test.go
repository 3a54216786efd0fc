package block

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/rubatodb/rubato/pkg/backend"
)

// ListObjects completes memBackend's backend.Backend; these tests do not
// need modification times, so every object reports the zero time.
func (m *memBackend) ListObjects(_ context.Context, dir string) ([]backend.ObjectInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	prefix := strings.TrimSuffix(dir, "/")
	if prefix != "" {
		prefix += "/"
	}
	out := []backend.ObjectInfo{}
	for k, data := range m.objects {
		if rest, ok := strings.CutPrefix(k, prefix); ok && !strings.Contains(rest, "/") {
			out = append(out, backend.ObjectInfo{Key: k, Size: int64(len(data)), LastModified: time.Time{}})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
