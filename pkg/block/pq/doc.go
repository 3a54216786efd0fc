// Package pq is the Parquet mechanism beneath pkg/block: generic pieces
// that read and write Parquet files without knowing what their columns
// mean. pkg/block (the policy: which schema a block version has, what a
// trace row holds, how blocks are searched) imports pq; pq never imports
// pkg/block.
//
// Invariants:
//
//   - ZstdCodec writes standard zstd frames, so any Parquet reader decodes
//     the pages it compresses.
//   - ObjectReaderAt serves a read from memory only when a prefetched
//     Section holds all of it; anything else is one ranged GET. Sections
//     are never modified.
package pq
