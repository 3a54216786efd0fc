package block

import (
	"path"
	"strconv"

	"github.com/google/uuid"
)

// Object names inside a block's directory <tenant>/<block-uuid>/.
const (
	// MetaName is written last; a block exists only once it is present.
	MetaName = "meta.json"
	// CompactedMetaName is written by the compactor once the block has been
	// merged into another one and is waiting for deletion.
	CompactedMetaName = "meta.compacted.json"
	// DataName holds the Parquet rows, one per trace.
	DataName = "data.parquet"
	// BloomPrefix is followed by the decimal shard number.
	BloomPrefix = "bloom-"
	// SearchIndexName holds the search index (format v2).
	SearchIndexName = "search-index"
)

// BlockDir returns the directory of a block, "<tenant>/<uuid>", without a
// trailing slash (add one to List it).
func BlockDir(tenant string, id uuid.UUID) string {
	return path.Join(tenant, id.String())
}

// MetaKey returns "<tenant>/<uuid>/meta.json".
func MetaKey(tenant string, id uuid.UUID) string {
	return BlockDir(tenant, id) + "/" + MetaName
}

// CompactedMetaKey returns "<tenant>/<uuid>/meta.compacted.json".
func CompactedMetaKey(tenant string, id uuid.UUID) string {
	return BlockDir(tenant, id) + "/" + CompactedMetaName
}

// DataKey returns "<tenant>/<uuid>/data.parquet".
func DataKey(tenant string, id uuid.UUID) string {
	return BlockDir(tenant, id) + "/" + DataName
}

// BloomKey returns "<tenant>/<uuid>/bloom-<shard>".
func BloomKey(tenant string, id uuid.UUID, shard int) string {
	return BlockDir(tenant, id) + "/" + BloomPrefix + strconv.Itoa(shard)
}

// SearchIndexKey returns "<tenant>/<uuid>/search-index".
func SearchIndexKey(tenant string, id uuid.UUID) string {
	return BlockDir(tenant, id) + "/" + SearchIndexName
}
