package blocklist

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
)

// NotifyingBackend wraps a Backend and calls OnBlock with the Meta of every
// block whose meta.json it has just written. The single binary wraps the
// ingester's backend with it so that a flushed block is queryable in the
// same process before any poll (Poller.AddBlock).
type NotifyingBackend struct {
	backend.Backend
	OnBlock func(*block.Meta)
}

// Put stores the object; for a block's meta.json it calls OnBlock after the
// Put succeeded. meta.json is small (block.ParseMeta bounds it), so it is
// buffered to be parsed.
func (n *NotifyingBackend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	t, id, ok := parseMetaKey(key)
	if !ok || n.OnBlock == nil {
		return n.Backend.Put(ctx, key, r, size)
	}
	data, err := io.ReadAll(io.LimitReader(r, maxCompactedMetaSize+1))
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := n.Backend.Put(ctx, key, bytes.NewReader(data), size); err != nil {
		return err
	}
	if m, err := block.ParseMeta(data); err == nil && m.TenantID == t && m.BlockID == id {
		n.OnBlock(m)
	}
	return nil
}

// parseMetaKey recognises "<tenant>/<uuid>/meta.json".
func parseMetaKey(key string) (string, uuid.UUID, bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 || parts[2] != block.MetaName {
		return "", uuid.Nil, false
	}
	id, err := uuid.Parse(parts[1])
	if err != nil {
		return "", uuid.Nil, false
	}
	return parts[0], id, true
}
