package block

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Block format versions. Readers accept both; the Writer writes v2.
const (
	// VersionV1: data.parquet, bloom shards, meta.json.
	VersionV1 = "v1"
	// VersionV2: v1 plus the search-index object (searchindex.go).
	VersionV2 = "v2"
)

// Limits checked by ParseMeta.
const (
	// TraceIDSize is the length of every trace ID in a block.
	TraceIDSize = 16
	// MaxBloomShards bounds BloomShardCount. At the default 100 KiB shard
	// size this is over 6 GiB of bloom filter, far beyond any real block.
	MaxBloomShards = 1 << 16
	// maxMetaSize bounds the meta.json a reader accepts.
	maxMetaSize = 1 << 20
)

// Meta describes one block. It is stored as meta.json, the last object a
// writer uploads, so a Meta that exists describes a complete block.
type Meta struct {
	// Version is the block format version, VersionV1 or VersionV2.
	Version string `json:"version"`
	// BlockID is the block's UUID, also the name of its directory.
	BlockID uuid.UUID `json:"blockID"`
	// TenantID owns the block.
	TenantID string `json:"tenantID"`
	// MinID and MaxID are the smallest and largest trace IDs in the block
	// (TraceIDSize bytes each, hex in JSON).
	MinID HexID `json:"minID"`
	MaxID HexID `json:"maxID"`
	// StartTime is the earliest non-zero span start, EndTime the latest span
	// end; EndTime >= StartTime always.
	StartTime time.Time `json:"startTime"`
	EndTime   time.Time `json:"endTime"`
	// TotalObjects is the number of Parquet rows: traces, a trace stored
	// as several rows (parts.go) counting once per row.
	TotalObjects int `json:"totalObjects"`
	// TotalSpans is the number of spans over all traces.
	TotalSpans int64 `json:"totalSpans"`
	// Size is the length of data.parquet in bytes.
	Size int64 `json:"size"`
	// FooterSize is the length of the tail of data.parquet that follows the
	// last row group: page index, Thrift footer, footer length and magic.
	// A reader fetches exactly these bytes to open the file.
	FooterSize int64 `json:"footerSize"`
	// RowGroups is the number of Parquet row groups.
	RowGroups int `json:"rowGroups"`
	// CompactionLevel is 0 for blocks cut by an ingester, and one more than
	// the highest input level for blocks written by the compactor.
	CompactionLevel uint8 `json:"compactionLevel"`
	// BloomShardCount is the number of bloom-<n> objects, n in [0, count).
	BloomShardCount int `json:"bloomShardCount"`
	// SearchIndexSize is the length of the search-index object (v2 only).
	SearchIndexSize int64 `json:"searchIndexSize,omitempty"`
	// CreatedAt is when the writer finished the block.
	CreatedAt time.Time `json:"createdAt"`
}

// HexID is a byte string that marshals to JSON as lower-case hex.
type HexID []byte

// MarshalJSON implements json.Marshaler.
func (h HexID) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, 2*len(h)+2)
	out = append(out, '"')
	out = hex.AppendEncode(out, h)
	return append(out, '"'), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (h *HexID) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("hex id: %w", err)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("hex id: %w", err)
	}
	*h = b
	return nil
}

// Marshal validates m and encodes it as meta.json.
func (m *Meta) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.MarshalIndent(m, "", "  ")
}

// ParseMeta decodes and validates meta.json. Unknown fields are ignored so
// that an older reader can read a newer v1 meta with added fields.
func ParseMeta(data []byte) (*Meta, error) {
	if len(data) > maxMetaSize {
		return nil, fmt.Errorf("%w: meta.json is %d bytes, limit %d", ErrInvalidMeta, len(data), maxMetaSize)
	}
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMeta, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the invariants of a Meta.
func (m *Meta) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidMeta, fmt.Sprintf(format, args...))
	}
	switch {
	case m.Version != VersionV1 && m.Version != VersionV2:
		return bad("unknown version %q", m.Version)
	case (m.Version == VersionV2) != (m.SearchIndexSize > 0) || m.SearchIndexSize > maxSearchIndexSize:
		return bad("search index size %d in a %s block", m.SearchIndexSize, m.Version)
	case m.BlockID == uuid.Nil:
		return bad("nil block id")
	case m.TenantID == "":
		return bad("empty tenant id")
	case len(m.MinID) != TraceIDSize || len(m.MaxID) != TraceIDSize:
		return bad("min/max id must be %d bytes, got %d and %d", TraceIDSize, len(m.MinID), len(m.MaxID))
	case bytes.Compare(m.MinID, m.MaxID) > 0:
		return bad("min id %x > max id %x", []byte(m.MinID), []byte(m.MaxID))
	case m.EndTime.Before(m.StartTime):
		return bad("end time %s before start time %s", m.EndTime, m.StartTime)
	case m.TotalObjects <= 0:
		return bad("total objects %d, want > 0", m.TotalObjects)
	case m.TotalSpans < 0:
		return bad("total spans %d", m.TotalSpans)
	case m.Size <= 0:
		return bad("size %d", m.Size)
	case m.FooterSize <= 8 || m.FooterSize > m.Size:
		return bad("footer size %d outside (8, size %d]", m.FooterSize, m.Size)
	case m.RowGroups <= 0 || m.RowGroups > m.TotalObjects:
		return bad("row groups %d outside [1, total objects %d]", m.RowGroups, m.TotalObjects)
	case m.BloomShardCount <= 0 || m.BloomShardCount > MaxBloomShards:
		return bad("bloom shard count %d outside [1, %d]", m.BloomShardCount, MaxBloomShards)
	}
	return nil
}
