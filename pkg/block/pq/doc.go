// Package pq is the Parquet mechanism beneath pkg/block: a file writer of
// its own, column readers that split pages into rows, row copying between
// files as bytes, level cursors and filters, the zstd page codec, and a
// ranged io.ReaderAt over an object. It knows Parquet, not traces: no
// column of any schema means anything here. pkg/block is the policy
// above it (which schema a block version has, what a row holds, how blocks
// are written, found and searched) and imports pq; pq never imports
// pkg/block. A new block version reuses pq rather than copying it.
//
// Invariants:
//
//   - A Layout is derived once from a parquet.Schema and a sorting column
//     (NewLayout) and is immutable afterwards; it may be shared. Every
//     column has an encoding the writer implements (PLAIN,
//     DELTA_LENGTH_BYTE_ARRAY, DELTA_BINARY_PACKED, RLE_DICTIONARY); the
//     sorting column is a required top-level FIXED_LEN_BYTE_ARRAY. A column
//     is required at the top level or under a repeated field (never
//     optional without repetition): a top-level cell is one value.
//   - FileWriter cuts pages only between rows: no row spans two pages, and
//     the readers rely on it (a page that does not start a row is corrupt).
//     A row group's pages are written column by column when the group is
//     cut, a column chunk's dictionary page first; the page index of every
//     column follows the last row group, then the footer. Min/max bounds
//     are written for the sorting column only. The caller writes rows in
//     ascending order of that column: FileWriter does not check it
//     (pkg/block's Writer does). A column chunk's dictionary stops growing
//     at 32 KiB; the chunk's later pages are PLAIN. An error from a write
//     leaves the file unusable.
//   - Reading never panics on corrupt pages: Page's checks (levels within
//     the column's maxima, value counts matching the levels, dictionary
//     indexes in range, a page starting a row) run when a ColReader reads
//     a page, and a failed check is an error. Cells, cursors and the copy
//     index pages only as those checks allow.
//   - Ownership: a Page is reference-counted. A Cell is valid while its
//     page holds a count: a RowBatch holds one per page until Reset,
//     FileWriter.WriteCells one per cell until it has copied the row, and
//     a ColReader one on its current page. At zero the page's buffers go
//     back to parquet-go.
//   - WriteCells copies levels and values as bytes, never through
//     parquet.Value; a dictionary index of an input chunk is looked up in
//     the output dictionary once per output column chunk.
//   - ZstdCodec writes standard zstd frames, so any Parquet reader decodes
//     the pages it compresses.
//   - ObjectReaderAt serves a read from memory only when one prefetched
//     Section holds all of it; anything else is one ranged GET. Sections
//     are never modified.
//
// Concurrency: FileWriter, ColReader, SeekReader, RowBatch, Cursor and
// ZstdCodec are for one goroutine at a time; pages shared by cells are
// not counted atomically, so a row's cells stay with one goroutine.
//
// pkg/block/FORMAT.md draws the bytes FileWriter writes.
package pq
