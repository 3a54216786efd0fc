package block

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block/pq"
	"github.com/rubatodb/rubato/pkg/tenant"
)

// Key-value metadata written into the Parquet footer.
const parquetVersionKey = "rubato.block.version"

// Writer builds one block. Rows are streamed to a temporary file; memory is
// bounded by one row group plus 8 bytes per trace for the bloom filter.
// A Writer is not safe for concurrent use.
type Writer struct {
	be     backend.Backend
	cfg    Config
	tenant string
	id     uuid.UUID
	level  uint8

	tmp   *os.File
	pw    *pq.FileWriter
	codec *pq.ZstdCodec

	row     traceRow
	shred   shredder
	split   columns // AddRow's row by column
	hashes  []uint64
	first   [TraceIDSize]byte
	last    [TraceIDSize]byte
	spans   int64
	start   uint64 // earliest non-zero span start
	end     uint64 // latest span end
	rgStart int64  // pw.size() when the current row group began
	rgRows  int64  // rows in the current row group
	flushed int64  // rows in finished row groups
	done    bool

	// Search index (format v2): filled as rows are added.
	idx      *searchIndex
	rgTimes  rgTimes // current row group's row times
	trStart  uint64  // current trace's start and end over its parts
	trEnd    uint64
	trActive bool
}

// schemaV1 is the Parquet schema of format v1 (parquet-go caches it per type).
func schemaV1() *parquet.Schema { return parquet.SchemaOf(new(traceRow)) }

// Footer fields of data.parquet (FORMAT.md).
var (
	parquetKeyValues = []format.KeyValue{{Key: parquetVersionKey, Value: VersionV1}}
	parquetCreatedBy = "rubato version " + VersionV1 + "(build )"
)

// NewWriter starts block id of tenant at the given compaction level.
// estimatedObjects (the expected trace count) only presizes buffers; the
// bloom filter is sized from the real count at Close. The temporary file is
// created in tmpDir ("" means os.TempDir()).
func NewWriter(_ context.Context, be backend.Backend, cfg Config, tenantID string, id uuid.UUID, level uint8, estimatedObjects int, tmpDir string) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := tenant.Validate(tenantID); err != nil {
		return nil, fmt.Errorf("new block writer: %w", err)
	}
	if id == uuid.Nil {
		return nil, errors.New("new block writer: nil block id")
	}
	codec, err := pq.NewZstdCodec()
	if err != nil {
		return nil, fmt.Errorf("new block writer: %w", err)
	}
	tmp, err := os.CreateTemp(tmpDir, "block-"+id.String()+"-*.parquet")
	if err != nil {
		codec.Close()
		return nil, fmt.Errorf("new block writer: %w", err)
	}
	w := &Writer{
		be:     be,
		cfg:    cfg,
		tenant: tenantID,
		id:     id,
		level:  level,
		tmp:    tmp,
		codec:  codec,
		idx:    newSearchIndex(),
		hashes: make([]uint64, 0, min(max(estimatedObjects, 0), 1<<24)),
	}
	lay, err := v1Layout()
	if err != nil {
		w.Abort()
		return nil, fmt.Errorf("new block writer: %w", err)
	}
	if w.pw, err = pq.NewFileWriter(tmp, lay, codec, cfg.PageSizeBytes); err != nil {
		w.Abort()
		return nil, fmt.Errorf("new block writer: %w", err)
	}
	return w, nil
}

// Add appends one trace. IDs must be TraceIDSize bytes and strictly
// ascending (ErrOutOfOrder otherwise). A trace with more than
// Config.MaxSpansPerRow spans is stored as several rows (parts.go). tr is
// not retained. An error from the Parquet writer or the temporary file
// aborts the Writer; an invalid argument does not.
func (w *Writer) Add(traceID []byte, tr *tracev1.TracesData) error {
	if err := w.checkID(traceID, false); err != nil {
		return err
	}
	return w.addParts(traceID, tr)
}

// AddPart appends more spans to the trace added last (Add, AddRow or a
// previous AddPart), as further rows with the same ID: readers return the
// trace and tr joined (parts.go). traceID must equal the last ID
// (ErrOutOfOrder otherwise).
func (w *Writer) AddPart(traceID []byte, tr *tracev1.TracesData) error {
	if err := w.checkID(traceID, true); err != nil {
		return err
	}
	return w.addParts(traceID, tr)
}

func (w *Writer) addParts(traceID []byte, tr *tracev1.TracesData) error {
	if tr == nil {
		return fmt.Errorf("add trace %x: nil trace", traceID)
	}
	row := &w.row
	parts := splitTrace(tr, w.cfg.MaxSpansPerRow)
	if len(parts) > 1 {
		// Convert every part once before writing any, so that a trace
		// that cannot be stored (invalid UTF-8 in a nested value) is
		// rejected whole, as a one-row trace is, and never half written.
		for _, part := range parts {
			if err := row.fromOTLP([TraceIDSize]byte(traceID), part); err != nil {
				return fmt.Errorf("add trace %x: %w", traceID, err)
			}
		}
	}
	for _, part := range parts {
		if err := row.fromOTLP([TraceIDSize]byte(traceID), part); err != nil {
			return fmt.Errorf("add trace %x: %w", traceID, err)
		}
		w.idx.addTraceRow(row)
		if err := w.write(traceID, w.shred.shred(row), row.StartTimeUnixNano, row.EndTimeUnixNano, row.SpanCount); err != nil {
			return err
		}
	}
	return nil
}

// AddRow appends a row read from a v1 block with a RowReader, unchanged
// and without converting it to OTLP. The same ordering rules as Add apply
// (by row.TraceID()); rows and traces may be mixed in one block. The
// block's meta (times, span count) accounts for the row as for Add. row is
// not retained.
func (w *Writer) AddRow(row Row) error { return w.addRow(row, false) }

// AddPartRow appends a row that continues the trace added last (same ID,
// ErrOutOfOrder otherwise), as AddPart does: copying a multi-row trace
// takes AddRow for its first row and AddPartRow for the others.
func (w *Writer) AddPartRow(row Row) error { return w.addRow(row, true) }

func (w *Writer) addRow(row Row, part bool) error {
	if err := row.check(); err != nil {
		return fmt.Errorf("add row: %w", err)
	}
	id := row.TraceID()
	if err := w.checkID(id, part); err != nil {
		return err
	}
	if row.cells != nil {
		c := row.cells
		// The one derived column a reader checks (DecodeRow): a row whose
		// span count disagrees with its spans is not copied on.
		if vs, ve := c[colSpan].Page.Values(c[colSpan].Row); int32(ve-vs) != c[colSpanCount].Int32() {
			return fmt.Errorf("add row %x: %w: span count %d, %d spans", id, ErrCorrupt, c[colSpanCount].Int32(), ve-vs)
		}
		w.idx.addCells(c)
		if err := w.pw.WriteCells(c); err != nil {
			w.Abort() // a partly written row cannot be taken back
			return fmt.Errorf("add row %x: %w", id, err)
		}
		w.addStats(id, uint64(c[colStartTimeUnixNano].Int64()), uint64(c[colEndTimeUnixNano].Int64()), c[colSpanCount].Int32())
		return w.endRow()
	}
	w.split.split(row.vals)
	var tr traceRow
	if err := reconstruct(&tr, row.vals); err != nil {
		return fmt.Errorf("add row %x: %w", id, err)
	}
	w.idx.addTraceRow(&tr)
	err := w.write(id, &w.split, uint64(w.split[colStartTimeUnixNano][0].Int64()),
		uint64(w.split[colEndTimeUnixNano][0].Int64()), w.split[colSpanCount][0].Int32())
	clear(w.split[:])
	return err
}

// checkID checks that traceID may come next: greater than the last ID, or
// (part) equal to it.
func (w *Writer) checkID(traceID []byte, part bool) error {
	if w.done {
		return ErrWriterClosed
	}
	if len(traceID) != TraceIDSize {
		return fmt.Errorf("%w: got %d bytes", ErrInvalidTraceID, len(traceID))
	}
	if part {
		if len(w.hashes) == 0 || !bytes.Equal(traceID, w.last[:]) {
			return fmt.Errorf("%w: part of trace %x after trace %x", ErrOutOfOrder, traceID, w.last)
		}
		return nil
	}
	if len(w.hashes) > 0 && bytes.Compare(traceID, w.last[:]) <= 0 {
		return fmt.Errorf("%w: %x after %x", ErrOutOfOrder, traceID, w.last)
	}
	return nil
}

// write appends one shredded row and its stats. It hands each column's
// values straight to that column's writer, which is what parquet-go's
// WriteRows does after first copying the row into per-column buffers;
// skipping that copy saves a tenth of the write time. (The row group's row
// count comes from the column writers, not from WriteRows.)
func (w *Writer) write(traceID []byte, cols *columns, start, end uint64, spans int32) error {
	if err := w.pw.WriteRow(cols[:]); err != nil {
		w.Abort() // a partly written row cannot be taken back
		return fmt.Errorf("add trace %x: %w", traceID, err)
	}
	w.addStats(traceID, start, end, spans)
	return w.endRow()
}

// addStats accounts for a row written: bloom hash, ID range, times, spans.
func (w *Writer) addStats(traceID []byte, start, end uint64, spans int32) {
	if w.rgRows == 0 {
		w.rgTimes = rgTimes{start: start, end: end}
	} else {
		w.rgTimes.start, w.rgTimes.end = min(w.rgTimes.start, start), max(w.rgTimes.end, end)
	}
	if w.trActive && bytes.Equal(traceID, w.last[:]) {
		if start != 0 && (w.trStart == 0 || start < w.trStart) {
			w.trStart = start
		}
		w.trEnd = max(w.trEnd, end)
	} else {
		w.endTrace()
		w.trStart, w.trEnd, w.trActive = start, end, true
	}
	if len(w.hashes) == 0 {
		copy(w.first[:], traceID)
	}
	copy(w.last[:], traceID)
	w.hashes = append(w.hashes, HashID(traceID))
	w.spans += int64(spans)
	if start != 0 && (w.start == 0 || start < w.start) {
		w.start = start
	}
	w.end = max(w.end, end)
}

// endTrace records the duration of the trace added last in the index.
func (w *Writer) endTrace() {
	if !w.trActive {
		return
	}
	d := uint64(0)
	if w.trEnd > w.trStart {
		d = w.trEnd - w.trStart
	}
	addDuration(&w.idx.traceDurations, d)
	w.trActive = false
}

// endRow counts a row and cuts the row group when it is full.
func (w *Writer) endRow() error {
	w.rgRows++
	if w.rowGroupFull() {
		if err := w.pw.FlushRowGroup(); err != nil {
			w.Abort()
			return fmt.Errorf("flush row group: %w", err)
		}
		w.flushed += w.rgRows
		w.rgRows = 0
		w.idx.rowGroups = append(w.idx.rowGroups, w.rgTimes)
		w.rgStart = w.pw.Size()
	}
	return nil
}

// rowGroupFull decides when to cut a row group. The file writer's size
// estimate counts the page being filled before encoding and compression,
// so it only sizes the first row group; after that the writer cuts every
// RowGroupSizeBytes / (bytes per row so far) rows.
func (w *Writer) rowGroupFull() bool {
	target := int64(w.cfg.rowGroupSizeBytes(w.level))
	if w.flushed == 0 {
		return w.pw.Size()-w.rgStart >= target
	}
	rows := target * w.flushed / max(w.rgStart, 1)
	return w.rgRows >= max(rows, 1)
}

// Len returns the number of rows added so far (traces, plus one per extra
// part of a multi-row trace).
func (w *Writer) Len() int { return len(w.hashes) }

// Close finishes the Parquet file and uploads data.parquet, the bloom
// shards and, last, meta.json. The temporary file is removed whether or not
// Close succeeds. On error some objects may have been uploaded, but never
// meta.json, so the block stays invisible; writing the same block ID again
// overwrites them.
func (w *Writer) Close(ctx context.Context) (*Meta, error) {
	if w.done {
		return nil, ErrWriterClosed
	}
	defer w.Abort()
	if len(w.hashes) == 0 {
		return nil, ErrEmptyBlock
	}
	if err := w.pw.Close(parquetKeyValues, parquetCreatedBy); err != nil {
		return nil, fmt.Errorf("close parquet: %w", err)
	}
	if w.rgRows > 0 {
		w.idx.rowGroups = append(w.idx.rowGroups, w.rgTimes)
	}
	w.endTrace()
	size, err := w.tmp.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("close block: %w", err)
	}
	dataEnd := w.pw.DataEnd()
	if _, err := w.tmp.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("close block: %w", err)
	}
	if err := w.be.Put(ctx, DataKey(w.tenant, w.id), w.tmp, size); err != nil {
		return nil, fmt.Errorf("upload %s: %w", DataName, err)
	}

	shards := newShardedBloom(len(w.hashes), w.cfg.BloomFP, w.cfg.BloomShardSizeBytes)
	for _, h := range w.hashes {
		shards[ShardOf(h, len(shards))].Add(h)
	}
	var buf []byte
	for i, s := range shards {
		buf = s.AppendEncode(buf[:0])
		if err := w.be.Put(ctx, BloomKey(w.tenant, w.id, i), bytes.NewReader(buf), int64(len(buf))); err != nil {
			return nil, fmt.Errorf("upload bloom shard %d: %w", i, err)
		}
	}

	if len(w.idx.rowGroups) != w.pw.NumRowGroups() {
		return nil, fmt.Errorf("close block: search index has %d row groups, file %d", len(w.idx.rowGroups), w.pw.NumRowGroups())
	}
	buf = w.idx.encode()
	if err := w.be.Put(ctx, SearchIndexKey(w.tenant, w.id), bytes.NewReader(buf), int64(len(buf))); err != nil {
		return nil, fmt.Errorf("upload %s: %w", SearchIndexName, err)
	}

	meta := &Meta{
		Version:         VersionV2,
		SearchIndexSize: int64(len(buf)),
		BlockID:         w.id,
		TenantID:        w.tenant,
		MinID:           HexID(bytes.Clone(w.first[:])),
		MaxID:           HexID(bytes.Clone(w.last[:])),
		StartTime:       unixNano(w.start),
		EndTime:         unixNano(max(w.end, w.start)),
		TotalObjects:    len(w.hashes),
		TotalSpans:      w.spans,
		Size:            size,
		FooterSize:      size - dataEnd,
		RowGroups:       w.pw.NumRowGroups(),
		CompactionLevel: w.level,
		BloomShardCount: len(shards),
		CreatedAt:       time.Now().UTC(),
	}
	data, err := meta.Marshal()
	if err != nil {
		return nil, fmt.Errorf("close block: %w", err)
	}
	if err := w.be.Put(ctx, MetaKey(w.tenant, w.id), bytes.NewReader(data), int64(len(data))); err != nil {
		return nil, fmt.Errorf("upload %s: %w", MetaName, err)
	}
	return meta, nil
}

// Abort discards the block: it removes the temporary file and uploads
// nothing more. It is safe to call more than once, and after Close.
func (w *Writer) Abort() {
	if w.codec != nil {
		w.codec.Close()
		w.codec = nil
	}
	if w.tmp == nil {
		w.done = true
		return
	}
	w.done = true
	name := w.tmp.Name()
	_ = w.tmp.Close()
	_ = os.Remove(name)
	w.tmp = nil
}

func unixNano(ns uint64) time.Time {
	if ns == 0 {
		return time.Unix(0, 0).UTC()
	}
	return time.Unix(0, int64(min(ns, 1<<63-1))).UTC()
}
