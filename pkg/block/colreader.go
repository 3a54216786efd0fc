package block

import (
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
)

// Column-wise row reading for RowReader. parquet-go's row reader builds
// each row by pulling values from every column in turn and assembling one
// parquet.Row, which AddRow then splits by column again. Here a batch of
// rows is read one column at a time into a per-column buffer, and a row is
// the set of its sub-slices, one per column, which AddRow hands to the
// column writers as they are. (Rows never span pages: parquet-go's writer
// cuts pages between rows, and a row that seems to is reported corrupt.)
//
// Byte-array values point into the page they were decoded from: a page
// stays alive while a batch holding its values is in use. pageRef counts
// the batches and the column reader using a page and hands its buffers
// back to parquet-go at zero.

// pageRef is one page of a column chunk being read.
type pageRef struct {
	page parquet.Page
	vr   parquet.ValueReader
	refs int
}

func (p *pageRef) release() {
	p.refs--
	if p.refs == 0 {
		parquet.Release(p.page)
		p.page, p.vr = nil, nil
	}
}

// colChunk is how many values a colReader decodes at a time.
const colChunk = 256

// colReader reads one column chunk of the current row group.
type colReader struct {
	pages *parquet.FilePages
	cur   *pageRef // page being read, nil when none
	done  bool     // cur has no more values
	buf   [colChunk]parquet.Value
	carry []parquet.Value // decoded from cur, not yet in a batch (aliases buf)
}

// readRows appends the values of the column's next n rows to dst, and
// the end offset in dst of each row to ends. It adds a count to every page
// it took values from to refs. io.EOF: the chunk ended before n rows.
func (c *colReader) readRows(n int, dst []parquet.Value, ends []int32, refs []*pageRef) ([]parquet.Value, []int32, []*pageRef, error) {
	rows := 0
	var counted *pageRef // page already in refs
	for {
		if len(c.carry) == 0 {
			if rows == n && (c.cur == nil || c.done) {
				// A page ends with a whole row: the last row ends here.
				return dst, append(ends, int32(len(dst))), refs, nil
			}
			if err := c.fill(); err != nil {
				if errors.Is(err, io.EOF) && rows == n {
					return dst, append(ends, int32(len(dst))), refs, nil
				}
				return dst, ends, refs, err
			}
			continue
		}
		v := c.carry
		i := 0
		if v[0].RepetitionLevel() == 0 {
			if rows == n {
				return dst, append(ends, int32(len(dst))), refs, nil
			}
			if rows > 0 {
				ends = append(ends, int32(len(dst)))
			}
			rows++
			i = 1
		} else if rows == 0 {
			return dst, ends, refs, errors.New("column chunk does not start a row where expected")
		}
		for i < len(v) && v[i].RepetitionLevel() != 0 {
			i++
		}
		if c.cur != counted {
			c.cur.refs++
			refs = append(refs, c.cur)
			counted = c.cur
		}
		dst = append(dst, v[:i]...)
		c.carry = v[i:]
	}
}

// fill decodes the next values of the chunk into carry, moving to the next
// page when the current one is done. It returns io.EOF at the chunk's end.
func (c *colReader) fill() error {
	if c.cur == nil || c.done {
		if c.cur != nil {
			if !c.done {
				return errors.New("page not read to its end")
			}
			c.cur.release()
			c.cur = nil
		}
		page, err := c.pages.ReadPage()
		if err != nil {
			return err
		}
		c.cur, c.done = &pageRef{page: page, vr: page.Values(), refs: 1}, false
		if r := page.RepetitionLevels(); len(r) > 0 && r[0] != 0 {
			return errors.New("page does not start a row")
		}
	}
	n, err := c.cur.vr.ReadValues(c.buf[:])
	c.carry = c.buf[:n]
	switch {
	case errors.Is(err, io.EOF):
		c.done = true
	case err != nil:
		return err
	case n == 0:
		return errors.New("page values make no progress")
	}
	return nil
}

// finish checks that the chunk has no values left and releases it.
func (c *colReader) finish() error {
	for len(c.carry) == 0 {
		err := c.fill()
		if errors.Is(err, io.EOF) {
			c.close()
			return nil
		}
		if err != nil {
			return err
		}
	}
	return errors.New("column chunk holds more rows than its row group")
}

func (c *colReader) close() {
	clear(c.buf[:])
	c.carry = nil
	if c.cur != nil {
		c.cur.release()
		c.cur = nil
	}
	if c.pages != nil {
		_ = c.pages.Close()
		c.pages = nil
	}
}

// rowBatch is up to maxBatchRows rows of one row group, by column: row r's
// values of column c are cells[r*numColumns+c], sub-slices of vals[c].
type rowBatch struct {
	n     int
	vals  [numColumns][]parquet.Value
	ends  []int32
	cells [][]parquet.Value
	refs  []*pageRef // pages the values point into, one count each
}

// columns returns row r's values by column.
func (b *rowBatch) columns(r int) [][]parquet.Value {
	return b.cells[r*numColumns : (r+1)*numColumns : (r+1)*numColumns]
}

// reset releases the batch's pages: its rows must no longer be in use.
func (b *rowBatch) reset() {
	for _, p := range b.refs {
		p.release()
	}
	clear(b.refs)
	b.refs = b.refs[:0]
	for c := range b.vals {
		clear(b.vals[c])
		b.vals[c] = b.vals[c][:0]
	}
	clear(b.cells)
	b.n = 0
}

// read fills b (reset) with the next n rows of the row group cols read.
func (b *rowBatch) read(cols []colReader, n int) error {
	if need := n * numColumns; cap(b.cells) < need {
		b.cells = make([][]parquet.Value, need)
	}
	b.cells = b.cells[:n*numColumns]
	for c := range cols {
		var err error
		b.ends = b.ends[:0]
		b.vals[c], b.ends, b.refs, err = cols[c].readRows(n, b.vals[c][:0], b.ends, b.refs)
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("column %d has fewer rows than its row group", c)
		}
		if err != nil {
			return fmt.Errorf("column %d: %w", c, err)
		}
		if len(b.ends) != n {
			return fmt.Errorf("column %d: read %d rows, want %d", c, len(b.ends), n)
		}
		start := int32(0)
		for r, end := range b.ends {
			b.cells[r*numColumns+c] = b.vals[c][start:end:end]
			start = end
		}
	}
	b.n = n
	for r := range n {
		if err := checkTopLevel(b.columns(r)); err != nil {
			return err
		}
	}
	return nil
}

// checkTopLevel checks the trace-level columns of a row read by column
// (colReader already gave every column exactly one record).
func checkTopLevel(cols [][]parquet.Value) error {
	for c := 0; c <= colSpanCount; c++ {
		if len(cols[c]) != 1 || cols[c][0].IsNull() {
			return fmt.Errorf("row has no single value in top-level column %d", c)
		}
	}
	if id := cols[colTraceID][0]; id.Kind() != parquet.FixedLenByteArray || len(id.ByteArray()) != TraceIDSize {
		return errors.New("row has no 16-byte trace id")
	}
	if cols[colStartTimeUnixNano][0].Kind() != parquet.Int64 || cols[colEndTimeUnixNano][0].Kind() != parquet.Int64 ||
		cols[colSpanCount][0].Kind() != parquet.Int32 {
		return errors.New("row has malformed trace columns")
	}
	return nil
}
