package block

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// rowBatch is how many rows a RowReader decodes at a time.
const rowBatch = 64

// Row is one trace as a v1 block stores it: its shredded Parquet values.
// It is opaque; get one from RowReader.Next and hand it to Writer.AddRow
// (copying a trace between blocks without converting it to OTLP) or to
// DecodeRow. The zero Row is invalid.
type Row struct {
	vals    parquet.Row
	checked bool // vals passed check (set by RowReader; Clone keeps it)
}

// TraceID returns the row's 16-byte trace ID. It aliases the row.
func (r Row) TraceID() []byte {
	if len(r.vals) == 0 {
		return nil
	}
	return r.vals[colTraceID].ByteArray()
}

// SpanCount returns the number of spans in the row's trace.
func (r Row) SpanCount() int {
	if len(r.vals) <= colSpanCount {
		return 0
	}
	return int(r.vals[colSpanCount].Int32())
}

// Clone returns a copy of r that shares no memory with it, so it stays
// valid after the RowReader moves on.
func (r Row) Clone() Row {
	n := 0
	for i := range r.vals {
		if k := r.vals[i].Kind(); k == parquet.ByteArray || k == parquet.FixedLenByteArray {
			n += len(r.vals[i].ByteArray())
		}
	}
	vals := make(parquet.Row, len(r.vals))
	buf := make([]byte, 0, n)
	for i, v := range r.vals {
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
	return Row{vals: vals, checked: r.checked}
}

// check verifies the row's shape: every column of the v1 schema present,
// in order, each holding exactly one record, the top-level columns exactly
// one value. (Levels within a column are not cross-checked against the
// other columns: rows come from RowReader, which read them from a v1 file.)
func (r Row) check() error {
	if r.checked {
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
	if err := reconstruct(&tr, row.vals); err != nil {
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

// RowReader streams a block's rows in ascending trace-ID order, one row
// group (one ranged GET) at a time, so memory stays near one row group.
// It is not safe for concurrent use.
type RowReader struct {
	ctx context.Context
	r   *Reader
	ft  *footer

	nextRG int          // next row group to open
	rows   parquet.Rows // current row group, nil between row groups
	read   int64        // rows read from the current row group
	eof    bool         // the current row group has no more rows
	buf    []parquet.Row
	n, i   int
	prev   [TraceIDSize]byte
	first  bool
	err    error // sticky
}

// Rows returns a RowReader over the whole block. It fetches the footer
// (cached) now and each row group as Next reaches it. Close it when done.
func (r *Reader) Rows(ctx context.Context) (*RowReader, error) {
	ft, err := r.footer(ctx)
	if err != nil {
		return nil, err
	}
	return &RowReader{ctx: ctx, r: r, ft: ft, buf: make([]parquet.Row, rowBatch), first: true}, nil
}

// Next returns the next row and its trace ID, or io.EOF after the last one.
// The ID and the row are valid until the next call to Next or Close; use
// Row.Clone to keep a row longer. Once Next returned an error it returns
// the same error again. A row out of order or of the wrong shape, or a row
// group with fewer or more rows than the footer says, is a CorruptError.
func (rr *RowReader) Next() ([]byte, Row, error) {
	if rr.err != nil {
		return nil, Row{}, rr.err
	}
	id, row, err := rr.next()
	if err != nil {
		rr.err = err
		rr.closeRowGroup()
		return nil, Row{}, err
	}
	return id, row, nil
}

func (rr *RowReader) next() ([]byte, Row, error) {
	for {
		if rr.i < rr.n {
			row := Row{vals: rr.buf[rr.i]}
			rr.i++
			if err := row.check(); err != nil {
				return nil, Row{}, rr.corrupt(err)
			}
			row.checked = true
			id := row.TraceID()
			if !rr.first && bytes.Compare(rr.prev[:], id) >= 0 {
				return nil, Row{}, rr.corrupt(fmt.Errorf("trace id %x after %x", id, rr.prev))
			}
			rr.first = false
			copy(rr.prev[:], id)
			return id, row, nil
		}
		if err := rr.ctx.Err(); err != nil {
			return nil, Row{}, err
		}
		if rr.rows != nil && rr.eof {
			if want := rr.ft.rgs[rr.nextRG-1].rows; rr.read != want {
				return nil, Row{}, rr.corrupt(fmt.Errorf("row group %d: read %d rows, footer says %d", rr.nextRG-1, rr.read, want))
			}
			rr.closeRowGroup()
		}
		if rr.rows == nil {
			if rr.nextRG == len(rr.ft.rgs) {
				return nil, Row{}, io.EOF
			}
			if err := rr.openRowGroup(); err != nil {
				return nil, Row{}, err
			}
		}
		var n int
		err := rr.r.guard(func() error {
			var err error
			n, err = rr.rows.ReadRows(rr.buf)
			return err
		})
		rr.n, rr.i = n, 0
		rr.read += int64(n)
		switch {
		case errors.Is(err, io.EOF):
			rr.eof = true // the rows just read stay valid until Close
		case err != nil:
			return nil, Row{}, err
		case n == 0:
			return nil, Row{}, rr.corrupt(fmt.Errorf("row group %d: no progress", rr.nextRG-1))
		}
	}
}

func (rr *RowReader) openRowGroup() error {
	i := rr.nextRG
	ra, err := rr.r.fetchRowGroup(rr.ctx, rr.ft, i)
	if err != nil {
		return err
	}
	rr.nextRG++
	rr.read, rr.eof = 0, false
	return rr.r.guard(func() error {
		rr.rows = newRangeRowGroup(rr.ft.file.RowGroups()[i].(*parquet.FileRowGroup), ra).Rows()
		return nil
	})
}

func (rr *RowReader) closeRowGroup() {
	if rr.rows != nil {
		rows := rr.rows
		rr.rows = nil
		_ = rr.r.guard(rows.Close)
	}
}

func (rr *RowReader) corrupt(err error) error {
	return &CorruptError{Key: rr.r.dataKey, Err: err}
}

// Close releases the reader's buffers. It is safe to call more than once.
func (rr *RowReader) Close() error {
	rr.closeRowGroup()
	if rr.err == nil {
		rr.err = errors.New("block: row reader closed")
	}
	return nil
}
