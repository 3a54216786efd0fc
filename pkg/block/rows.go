package block

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/parquet-go/parquet-go"
	"github.com/rubatodb/rubato/pkg/block/pq"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// A RowReader decodes up to maxBatchRows rows at a time, fewer when the rows
// of the row group are big (by its average from the footer): about
// batchValues values per batch.
const (
	maxBatchRows = 64
	batchValues  = 64 << 10
)

// Row is one trace as a v1 block stores it: its shredded Parquet values.
// It is opaque; get one from RowReader.Next and hand it to Writer.AddRow
// (copying a trace between blocks without converting it to OTLP) or to
// DecodeRow. The zero Row is invalid.
type Row struct {
	// Either the row's cells by column (RowReader: rows of decoded pages,
	// checked as they were read), or the whole row in one slice.
	cells   []pq.Cell
	vals    parquet.Row
	checked bool // vals passed check (Clone keeps it)
}

// column returns the row's values of leaf column c (a new slice for a row
// of cells).
func (r Row) column(c int) []parquet.Value {
	if r.cells != nil {
		return r.cells[c].AppendValues(nil, c)
	}
	v := r.vals
	lo := sort.Search(len(v), func(i int) bool { return v[i].Column() >= c })
	hi := lo
	for hi < len(v) && v[hi].Column() == c {
		hi++
	}
	return v[lo:hi]
}

// flat returns the row as one parquet.Row (a copy for a row by column).
func (r Row) flat() parquet.Row {
	if r.cells == nil {
		return r.vals
	}
	n := 0
	for _, x := range r.cells {
		ls, le := x.Page.Levels(x.Row)
		n += le - ls
	}
	out := make(parquet.Row, 0, n)
	for c, x := range r.cells {
		out = x.AppendValues(out, c)
	}
	return out
}

// TraceID returns the row's 16-byte trace ID. It aliases the row.
func (r Row) TraceID() []byte {
	if r.cells != nil {
		return r.cells[colTraceID].Fixed()
	}
	if len(r.vals) == 0 {
		return nil
	}
	return r.vals[colTraceID].ByteArray()
}

// SpanCount returns the number of spans in the row's trace.
func (r Row) SpanCount() int {
	if r.cells != nil {
		return int(r.cells[colSpanCount].Int32())
	}
	if len(r.vals) <= colSpanCount {
		return 0
	}
	return int(r.vals[colSpanCount].Int32())
}

// Clone returns a copy of r that shares no memory with it, so it stays
// valid after the RowReader moves on.
func (r Row) Clone() Row {
	src := r.flat()
	n := 0
	for i := range src {
		if k := src[i].Kind(); k == parquet.ByteArray || k == parquet.FixedLenByteArray {
			n += len(src[i].ByteArray())
		}
	}
	vals := make(parquet.Row, len(src))
	buf := make([]byte, 0, n)
	for i, v := range src {
		switch v.Kind() {
		case parquet.ByteArray, parquet.FixedLenByteArray:
			off := len(buf)
			buf = append(buf, v.ByteArray()...)
			b := buf[off:len(buf):len(buf)]
			nv := parquet.ByteArrayValue(b)
			if v.Kind() == parquet.FixedLenByteArray {
				nv = parquet.FixedLenByteArrayValue(b)
			}
			v = nv.Level(v.RepetitionLevel(), v.DefinitionLevel(), v.Column())
		}
		vals[i] = v
	}
	return Row{vals: vals, checked: r.checked || r.cells != nil}
}

// check verifies the row's shape: every column of the v1 schema present,
// in order, each holding exactly one record, the top-level columns exactly
// one value. (Levels within a column are not cross-checked against the
// other columns: rows come from RowReader, which read them from a v1 file.)
func (r Row) check() error {
	if r.checked || r.cells != nil {
		return nil
	}
	v := r.vals
	if len(v) < numColumns {
		return fmt.Errorf("row has %d values, want at least %d", len(v), numColumns)
	}
	for c := 0; c <= colSpanCount; c++ {
		if v[c].Column() != c || v[c].IsNull() || v[c].RepetitionLevel() != 0 {
			return fmt.Errorf("row value %d is not top-level column %d", c, c)
		}
	}
	if v[colTraceID].Kind() != parquet.FixedLenByteArray || len(v[colTraceID].ByteArray()) != TraceIDSize {
		return errors.New("row has no 16-byte trace id")
	}
	if v[colStartTimeUnixNano].Kind() != parquet.Int64 || v[colEndTimeUnixNano].Kind() != parquet.Int64 ||
		v[colSpanCount].Kind() != parquet.Int32 {
		return errors.New("row has malformed trace columns")
	}
	// Each column holds one record: its first value starts it
	// (repetition level 0), no later value does.
	prev := colSpanCount
	for i := colSpanCount + 1; i < len(v); i++ {
		c := v[i].Column()
		if c != prev && c != prev+1 {
			return fmt.Errorf("row value %d is in column %d after column %d", i, c, prev)
		}
		if (c != prev) != (v[i].RepetitionLevel() == 0) {
			return fmt.Errorf("row value %d of column %d has repetition level %d", i, c, v[i].RepetitionLevel())
		}
		prev = c
	}
	if prev != numColumns-1 {
		return fmt.Errorf("row ends in column %d, want %d", prev, numColumns-1)
	}
	return nil
}

// DecodeRow converts a row to OTLP, exactly as Iterate and FindTraceByID
// would return the trace. For the rare trace present in several blocks
// being merged, which must be combined as OTLP.
func DecodeRow(row Row) (*tracev1.TracesData, error) {
	if err := row.check(); err != nil {
		return nil, fmt.Errorf("decode row: %w", err)
	}
	var tr traceRow
	if err := reconstruct(&tr, row.flat()); err != nil {
		return nil, fmt.Errorf("decode row: %w", err)
	}
	td, err := tr.toOTLP()
	if err != nil {
		return nil, fmt.Errorf("decode row %x: %w", tr.TraceID, err)
	}
	return td, nil
}

// reconstruct fills tr from a row, turning a decoder panic into an error.
func reconstruct(tr *traceRow, row parquet.Row) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed row: %v", p)
		}
	}()
	*tr = traceRow{}
	return schemaV1().Reconstruct(tr, row)
}

// RowReader streams a block's rows in trace-ID order, one row group (one
// ranged GET) at a time, so memory stays near one row group. The rows of
// a multi-row trace (parts.go) come one after the other with the same ID.
// It reads column by column (pq.ColReader). It is not safe for concurrent
// use.
type RowReader struct {
	ctx context.Context
	r   *Reader
	ft  *footer
	lay *pq.Layout

	nextRG int            // next row group to open
	open   bool           // cols read row group nextRG-1
	cols   []pq.ColReader // one per leaf column
	read   int64          // rows read from the current row group
	want   int            // rows per batch in the current row group
	// Rows are read a batch at a time into one of two batches, in turn,
	// so that reading ahead (PeekID) leaves the row Next returned last
	// intact.
	batches [2]pq.RowBatch
	cur     int // batches[cur] is being served
	i       int // its next row
	prev    [TraceIDSize]byte
	first   bool
	err     error // sticky
}

// Rows returns a RowReader over the whole block. It fetches the footer
// (cached) now and each row group as Next reaches it. Close it when done.
func (r *Reader) Rows(ctx context.Context) (*RowReader, error) {
	ft, err := r.streamFooter(ctx)
	if err != nil {
		return nil, err
	}
	lay, err := v1Layout()
	if err != nil {
		return nil, err
	}
	return &RowReader{ctx: ctx, r: r, ft: ft, lay: lay, first: true, cols: make([]pq.ColReader, numColumns)}, nil
}

// Next returns the next row and its trace ID, or io.EOF after the last one.
// The ID and the row are valid until the next call to Next or Close; use
// Row.Clone to keep a row longer. Once Next returned an error it returns
// the same error again. A row out of order or of the wrong shape, or a row
// group with fewer or more rows than the footer says, is a CorruptError.
func (rr *RowReader) Next() ([]byte, Row, error) {
	if err := rr.fill(); err != nil {
		return nil, Row{}, err
	}
	row := Row{cells: rr.batches[rr.cur].Columns(rr.i)}
	rr.i++
	return row.TraceID(), row, nil
}

// PeekID returns the trace ID of the row the next call to Next will
// return, or io.EOF if there is none, without invalidating the row Next
// returned last. The ID is valid until the next call to Next or Close. A
// reader copying or joining multi-row traces uses it to find where a trace
// ends.
func (rr *RowReader) PeekID() ([]byte, error) {
	if err := rr.fill(); err != nil {
		return nil, err
	}
	return rr.batches[rr.cur].Columns(rr.i)[colTraceID].Fixed(), nil
}

// fill makes sure row i of batches[cur] is the next row, reading the next
// batch (into the other one) if needed.
func (rr *RowReader) fill() error {
	if rr.err != nil {
		return rr.err
	}
	if rr.i < rr.batches[rr.cur].Len() {
		return nil
	}
	if err := rr.readBatch(); err != nil {
		rr.err = err
		rr.closeRowGroup()
		return err
	}
	return nil
}

func (rr *RowReader) readBatch() error {
	for {
		if err := rr.ctx.Err(); err != nil {
			return err
		}
		if rr.open && rr.read == rr.ft.rgs[rr.nextRG-1].rows {
			if err := rr.finishRowGroup(); err != nil {
				return err
			}
		}
		if !rr.open {
			if rr.nextRG == len(rr.ft.rgs) {
				return io.EOF
			}
			if err := rr.openRowGroup(); err != nil {
				return err
			}
			continue // a row group may (corruptly) have no rows
		}
		n := int(min(int64(rr.want), rr.ft.rgs[rr.nextRG-1].rows-rr.read))
		b := &rr.batches[rr.cur^1]
		b.Reset() // its rows were served two batches ago
		err := rr.r.guard(func() error { return b.Read(rr.cols, n) })
		if err != nil {
			if errors.Is(err, ErrCorrupt) || isBackendErr(err) {
				return err
			}
			return rr.corrupt(fmt.Errorf("row group %d: %w", rr.nextRG-1, err))
		}
		rr.read += int64(n)
		// IDs ascending (equal for the parts of one trace).
		for j := range n {
			id := b.Columns(j)[colTraceID].Fixed()
			if !rr.first && bytes.Compare(rr.prev[:], id) > 0 {
				return rr.corrupt(fmt.Errorf("trace id %x after %x", id, rr.prev))
			}
			rr.first = false
			copy(rr.prev[:], id)
		}
		rr.cur, rr.i = rr.cur^1, 0
		return nil
	}
}

func (rr *RowReader) openRowGroup() error {
	i := rr.nextRG
	ra, err := rr.r.fetchRowGroup(rr.ctx, rr.ft, i)
	if err != nil {
		return err
	}
	rr.nextRG++
	rr.read = 0
	rg := rr.ft.rgs[i]
	rr.want = int(min(max(batchValues*rg.rows/max(rg.values, 1), 1), maxBatchRows))
	chunks := rr.ft.file.RowGroups()[i].ColumnChunks()
	if len(chunks) != len(rr.cols) {
		return rr.corrupt(fmt.Errorf("row group %d has %d columns, want %d", i, len(chunks), len(rr.cols)))
	}
	for c, chunk := range chunks {
		rr.cols[c].Open(rr.lay.Leaf(c), chunk.(*parquet.FileColumnChunk).PagesFrom(ra))
	}
	rr.open = true
	return nil
}

// finishRowGroup checks that every column chunk of the row group has been
// read to its end and closes them. Rows already read stay valid.
func (rr *RowReader) finishRowGroup() error {
	rr.open = false
	for c := range rr.cols {
		err := rr.r.guard(rr.cols[c].Finish)
		if err != nil {
			rr.closeRowGroup()
			if errors.Is(err, ErrCorrupt) || isBackendErr(err) {
				return err
			}
			return rr.corrupt(fmt.Errorf("row group %d column %d: %w", rr.nextRG-1, c, err))
		}
	}
	return nil
}

func (rr *RowReader) closeRowGroup() {
	rr.open = false
	for c := range rr.cols {
		rr.cols[c].Close()
	}
}

func (rr *RowReader) corrupt(err error) error {
	return &CorruptError{Key: rr.r.dataKey, Err: err}
}

// Close releases the reader's buffers. It is safe to call more than once.
func (rr *RowReader) Close() error {
	rr.closeRowGroup()
	rr.batches[0].Reset()
	rr.batches[1].Reset()
	if rr.err == nil {
		rr.err = errors.New("block: row reader closed")
	}
	return nil
}

// SpanKeys calls fn with the span ID and the kind of every span of the
// row, in order, without decoding the row. The ID aliases the row.
func (r Row) SpanKeys(fn func(spanID []byte, kind int32)) {
	if r.cells != nil {
		// Both columns are required leaves under Spans: one value per span.
		ids, kinds := r.cells[colSpan], r.cells[colSpanKind]
		is, ie := ids.Page.Values(ids.Row)
		ks, ke := kinds.Page.Values(kinds.Row)
		for i := 0; i < ie-is && i < ke-ks; i++ {
			fn(ids.Page.BytesAt(is+i), kinds.Page.Value(ks+i).Int32())
		}
		return
	}
	ids, kinds := r.column(colSpan), r.column(colSpanKind)
	for i := 0; i < len(ids) && i < len(kinds); i++ {
		if ids[i].DefinitionLevel() < lvlSpan {
			continue // a ScopeSpans without spans
		}
		fn(ids[i].ByteArray(), kinds[i].Int32())
	}
}
