package blocklist

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
)

// IndexName is the tenant index object, directly under the tenant.
const IndexName = "index.json.gz"

// maxIndexSize bounds the decompressed size of an index a reader accepts
// (about a million blocks).
const maxIndexSize = 1 << 30

// ErrInvalidIndex means index.json.gz is malformed or breaks an invariant.
var ErrInvalidIndex = errors.New("blocklist: invalid tenant index")

// Index is the content of <tenant>/index.json.gz (gzip-compressed JSON),
// written by compactors so that queriers need not list the bucket.
type Index struct {
	// CreatedAt is when the writer built the index; readers ignore an index
	// older than their stale age.
	CreatedAt time.Time `json:"created_at"`
	// Metas are the live blocks, sorted by block ID.
	Metas []*block.Meta `json:"meta"`
	// CompactedMetas are blocks marked compacted and not yet deleted,
	// sorted by block ID.
	CompactedMetas []*CompactedMeta `json:"compacted"`
}

// IndexKey returns "<tenant>/index.json.gz".
func IndexKey(tenantID string) string { return tenantID + "/" + IndexName }

// EncodeIndex returns the gzip-compressed JSON of idx.
func EncodeIndex(idx *Index) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(idx); err != nil {
		return nil, fmt.Errorf("encode tenant index: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("encode tenant index: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeIndex decodes and validates an index of tenantID: every meta must be
// valid and belong to tenantID, and no block may appear twice.
func DecodeIndex(tenantID string, data []byte) (*Index, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidIndex, err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxIndexSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidIndex, err)
	}
	if len(raw) > maxIndexSize {
		return nil, fmt.Errorf("%w: over %d bytes decompressed", ErrInvalidIndex, maxIndexSize)
	}
	var idx Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidIndex, err)
	}
	seen := make(map[uuid.UUID]bool, len(idx.Metas)+len(idx.CompactedMetas))
	check := func(m *block.Meta) error {
		if m == nil {
			return fmt.Errorf("%w: null meta", ErrInvalidIndex)
		}
		if err := m.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidIndex, err)
		}
		if m.TenantID != tenantID {
			return fmt.Errorf("%w: block %s of tenant %q in the index of %q", ErrInvalidIndex, m.BlockID, m.TenantID, tenantID)
		}
		if seen[m.BlockID] {
			return fmt.Errorf("%w: block %s listed twice", ErrInvalidIndex, m.BlockID)
		}
		seen[m.BlockID] = true
		return nil
	}
	for _, m := range idx.Metas {
		if err := check(m); err != nil {
			return nil, err
		}
	}
	for _, c := range idx.CompactedMetas {
		if c == nil {
			return nil, fmt.Errorf("%w: null compacted meta", ErrInvalidIndex)
		}
		if err := check(&c.Meta); err != nil {
			return nil, err
		}
	}
	return &idx, nil
}

// WriteIndex uploads the index of tenantID in one Put.
func WriteIndex(ctx context.Context, be backend.Backend, tenantID string, idx *Index) error {
	data, err := EncodeIndex(idx)
	if err != nil {
		return err
	}
	if err := be.Put(ctx, IndexKey(tenantID), bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("write tenant index of %s: %w", tenantID, err)
	}
	return nil
}

// ReadIndex downloads and decodes the index of tenantID. A missing index
// gives an error wrapping backend.ErrNotFound; a malformed one
// ErrInvalidIndex.
func ReadIndex(ctx context.Context, be backend.Backend, tenantID string) (*Index, error) {
	data, err := backend.ReadAll(ctx, be, IndexKey(tenantID))
	if err != nil {
		return nil, fmt.Errorf("read tenant index of %s: %w", tenantID, err)
	}
	return DecodeIndex(tenantID, data)
}
