package blocklist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
)

// maxCompactedMetaSize bounds the meta.compacted.json a reader accepts.
const maxCompactedMetaSize = 1 << 20

// ErrInvalidCompactedMeta means meta.compacted.json is malformed.
var ErrInvalidCompactedMeta = errors.New("blocklist: invalid compacted meta")

// CompactedMeta is the content of meta.compacted.json: the block's Meta and
// when the block was marked compacted. It is deleted after
// compacted_block_retention from CompactedTime.
type CompactedMeta struct {
	block.Meta
	CompactedTime time.Time `json:"compactedTime"`
}

// MarshalCompactedMeta validates and encodes meta.compacted.json.
func MarshalCompactedMeta(c *CompactedMeta) ([]byte, error) {
	if err := c.Meta.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(c)
}

// ParseCompactedMeta decodes and validates meta.compacted.json.
func ParseCompactedMeta(data []byte) (*CompactedMeta, error) {
	if len(data) > maxCompactedMetaSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidCompactedMeta, len(data), maxCompactedMetaSize)
	}
	var c CompactedMeta
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCompactedMeta, err)
	}
	if err := c.Meta.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCompactedMeta, err)
	}
	return &c, nil
}

// MarkCompacted writes meta.compacted.json for m. After it returns nil the
// block is no longer live for any poller that lists the backend.
func MarkCompacted(ctx context.Context, be backend.Backend, m *block.Meta, at time.Time) (*CompactedMeta, error) {
	c := &CompactedMeta{Meta: *m, CompactedTime: at.UTC()}
	data, err := MarshalCompactedMeta(c)
	if err != nil {
		return nil, err
	}
	if err := be.Put(ctx, block.CompactedMetaKey(m.TenantID, m.BlockID), strings.NewReader(string(data)), int64(len(data))); err != nil {
		return nil, fmt.Errorf("mark block %s compacted: %w", m.BlockID, err)
	}
	return c, nil
}

// DeleteBlock removes every object of a block: meta.json first (the block
// stops being live), then the data and bloom objects, and meta.compacted.json
// last, so a deletion that stops half way leaves a block that is still seen
// as compacted and is deleted again later. Deleting a missing block is not
// an error.
func DeleteBlock(ctx context.Context, be backend.Backend, tenantID string, id uuid.UUID) error {
	if err := be.Delete(ctx, block.MetaKey(tenantID, id)); err != nil {
		return fmt.Errorf("delete block %s: %w", id, err)
	}
	dir := block.BlockDir(tenantID, id) + "/"
	keys, err := be.List(ctx, dir)
	if err != nil {
		return fmt.Errorf("delete block %s: %w", id, err)
	}
	compacted := block.CompactedMetaKey(tenantID, id)
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == compacted || strings.HasSuffix(k, "/") })
	for _, k := range keys {
		if err := be.Delete(ctx, k); err != nil {
			return fmt.Errorf("delete block %s: %w", id, err)
		}
	}
	if err := be.Delete(ctx, compacted); err != nil {
		return fmt.Errorf("delete block %s: %w", id, err)
	}
	return nil
}
