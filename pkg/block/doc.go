// Package block is Rubato's block format, versions v1 and v2 (VersionV1,
// VersionV2): how one batch of traces is laid out in the object store, how
// it is written, how a trace is found in it, and how traces are searched.
// FORMAT.md draws the bytes.
//
// pkg/block is the policy: the trace schema and what its columns mean,
// shredding, blocks, metas, blooms, the search index, search and the
// reader API. The Parquet mechanism beneath it (the file writer, column
// and page readers, row copying, level cursors and filters, the zstd
// codec, ranged object reads) is package pkg/block/pq, which knows no
// column's meaning and never imports pkg/block; its doc states its own
// invariants.
//
// A block is the set of objects under <tenant>/<block-uuid>/:
//
//	data.parquet   one row per trace (several for a big one), sorted by trace ID
//	bloom-<n>      bloom filter shards over the block's trace IDs
//	search-index   v2: a bounded summary of the block's values (searchindex.go)
//	meta.json      Meta, written last
//	meta.compacted.json   written by the compactor once the block is merged away
//
// Invariants:
//
//   - Rows in data.parquet are in ascending trace-ID order (bytewise over the
//     16-byte ID). A trace is one row, except a trace of more than
//     Config.MaxSpansPerRow spans, which Writer.Add stores as several
//     consecutive rows with its ID ("parts", parts.go) so that no row, and
//     no copy of one in a reader, writer or the compactor, grows with the
//     trace; every reader joins them back (FindTraceByID, Iterate) with a
//     rule under which the split is lossless. Equal IDs are never two
//     traces. parquet-go only records a sorting column; the Writer enforces
//     the order (ErrOutOfOrder: Add needs a greater ID, AddPart and
//     AddPartRow the same one). Row-group and page statistics of the TraceID
//     column are therefore ordered too, which is what lets a reader pick the
//     row group and page that can hold an ID from the footer alone (a
//     multi-row trace may go on into the next row groups).
//     FindTraceByIDFunc shows each part to the caller before joining it,
//     so that a lookup can bound what a giant trace costs.
//   - meta.json is written last, after data.parquet and every bloom shard. A
//     block without meta.json does not exist for readers; a failed write leaves
//     only invisible objects behind.
//   - The bloom filter never gives a false negative: every trace ID in
//     data.parquet was added to the shard ShardOf(HashID(id), BloomShardCount).
//     Hashing uses the full 16-byte ID (xxhash64), so 64-bit IDs padded with
//     zero bytes spread as well as random 128-bit ones.
//   - Storage is lossless for every OTLP field the protobuf wire format keeps
//     (except unknown fields): reading a trace back gives a message
//     proto.Equal to the one written, attribute order included. Values moved
//     to dedicated columns return to their original positions.
//   - Objects are immutable once written, so cached bloom shards and footers
//     never go stale.
//   - Decoding never panics on corrupt objects: such input yields an error
//     wrapping ErrCorrupt (or ErrInvalidMeta / ErrInvalidBloom).
//
// Writing: Writer.Add converts an OTLP trace to a row (convert.go) and
// shreds it into column values by hand (shred.go, no reflection). The
// Parquet file is written by a writer of our own (pq.FileWriter, given the
// v1 schema's layout, layout.go; it uses parquet-go's encoders and Thrift
// structs): each column buffers one page's levels and values flat, encodes
// and compresses it once it holds Config.PageSizeBytes, always at a row
// boundary (readers rely on rows never spanning pages), and holds the row
// group's encoded pages until the row group is cut, when it writes them
// dictionary page first. Blocks of compaction level > 0 use
// Config.CompactedRowGroupSizeBytes row groups: the writer holds every row
// group's page index until it closes the file, and a compacted block has
// many. parquet-go's own reader reads the files
// (TestFileWriterReadByParquetGo).
//
// Row-level API, for compaction: Reader.Rows returns a RowReader that
// streams the block's rows (Row, opaque) in trace-ID order, one row group
// (one ranged GET) at a time, from a footer opened without its page index.
// A row is one cell per column: a page decoded by parquet-go and the row's
// place in it (pq.Cell, read by pq.ColReader), whose levels and value
// counts were checked when the page was read. Writer.AddRow appends such a
// row to another block without the OTLP round trip and without
// parquet.Value: levels and values are copied as bytes, dictionary indexes
// remapped once per distinct value (pq.FileWriter.WriteCells), column by
// column for a batch of rows; it keeps the meta stats (IDs, times, span
// count) exact. DecodeRow converts a row to OTLP for the rare trace found
// in several inputs, which is combined as OTLP and written back with
// Writer.Add. Add and AddRow may be mixed in one block. RowReader.PeekID
// tells whether the next row continues the current trace (AddPartRow
// copies it). A Row returned by RowReader.Next, and its trace ID, are
// valid until the next Next or Close (PeekID does not end it); Row.Clone
// keeps one longer. A Row given to AddRow needs nothing more from the
// caller: the writer counts a reference on its pages until it has copied
// it.
//
//	rr, _ := block.Open(be, meta, cache).Rows(ctx)
//	defer rr.Close()
//	for {
//		id, row, err := rr.Next() // io.EOF at the end
//		...
//		err = w.AddRow(row) // or DecodeRow(row), combine, w.Add(id, td)
//	}
//
// Search (search.go, predicate.go, searchscan.go, searchspan.go,
// searchproject.go, cellwalk.go, tags.go): Reader.Search takes predicates
// (not TraceQL: pkg/search converts) and calls back with every trace that
// may match, decoded to OTLP.
//
//   - With SameSpan, a trace is a candidate only if one span may satisfy
//     every predicate with its own resource, scope, events and links.
//
//   - With Fields, a candidate may lack what the caller said it does not
//     read, and only that (searchproject.go states when a group is left
//     out); without Fields it comes whole.
//
//   - Search never misses a match: every check (search index, column
//     cells, decoded OTLP) answers "may match" when unsure (values of
//     other types, arrays, NaN, spans ending before they start, unknown
//     intrinsics, traces without a root span); regexes are matched
//     unanchored for =~ and anchored for !~, a superset of either
//     reading. TestSearchNeverMisses compares it with a brute-force
//     evaluation over random traces and predicates on v1, v2 and
//     compacted blocks.
//
//   - The search index is a superset of the block's values and bounded
//     (caps, overflow flags); a reader treats an overflowed set as "may
//     hold anything". It is immutable and cached like footers.
//
//   - Tag names and values come from the index (v2; values capped per
//     name, floats as their bounds) or a scan of the attribute columns (v1).
//
// Versioning: Meta.Version names the format; readers refuse versions they do
// not know. Once a version has been released, it never changes in place: a
// change in the bytes (schema column names or types, bloom layout, meta
// semantics) is a new version. (v1 is not released yet; until it is, it
// changes in place, as it did when traces over max_spans_per_row became
// several rows.) v2 lives beside v1 and adds only the search-index object;
// its data.parquet is v1's, so both stay readable while old blocks age out
// (compaction rewrites v1 into v2, as the compactor writes with Writer).
package block
