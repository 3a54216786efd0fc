package pq

import (
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
)

// Column-wise row reading. A batch of rows is read one column at a time,
// and a row is one Cell per column: a page decoded by parquet-go and the
// row's position in it. Nothing is converted to parquet.Value on the way:
// FileWriter.WriteCells copies a cell's levels and values straight into
// the output page (copy.go), remapping dictionary indexes; only a row that
// must be decoded materializes values (Cell.AppendValues). Rows never span
// pages (FileWriter cuts pages between rows; a page that does not start a
// row is reported corrupt).
//
// A page stays alive while a batch holding one of its cells is in use:
// Page counts the batches and the column reader using it and hands its
// buffers back to parquet-go at zero.

// Page is one decoded data page of a column chunk, split into rows.
type Page struct {
	page parquet.Page
	refs int
	leaf *Leaf

	rep, def []byte          // levels, nil when the column's max is 0
	vals     encoding.Values // defined values, or dictionary indexes (dict != nil)
	data     []byte          // vals.Data(): raw values (fixed width, or byte arrays with offs)
	offs     []uint32        // byte array offsets, len = values+1
	idx      []int32         // dictionary indexes (dict != nil)
	dict     *dictRemap      // the chunk's dictionary, nil for a page without one

	// Row r has levels [rowLvl[r], rowLvl[r+1]) and values
	// [rowVal[r], rowVal[r+1]). Both are nil for a column with max
	// repetition level 0 (one level and one value per row).
	rowLvl, rowVal []int32
	rows           int
}

// Release drops one count on the page; at zero its buffers go back to
// parquet-go.
func (p *Page) Release() {
	p.refs--
	if p.refs == 0 {
		parquet.Release(p.page)
		p.page, p.vals, p.data, p.offs, p.idx, p.rep, p.def = nil, encoding.Values{}, nil, nil, nil, nil, nil
	}
}

// Levels returns the level range of row r.
func (p *Page) Levels(r int32) (int, int) {
	if p.rowLvl == nil {
		return int(r), int(r) + 1
	}
	return int(p.rowLvl[r]), int(p.rowLvl[r+1])
}

// Values returns the value range of row r.
func (p *Page) Values(r int32) (int, int) {
	if p.rowVal == nil {
		return int(r), int(r) + 1
	}
	return int(p.rowVal[r]), int(p.rowVal[r+1])
}

// dictRemap is one column chunk's dictionary as read, with a cache of the
// index each of its values has in the dictionary of the output column
// chunk being written (copy.go). It is valid for one output chunk: owner
// and gen say which.
type dictRemap struct {
	dict  parquet.Dictionary
	data  []byte   // values: fixed width, or byte arrays with offs
	offs  []uint32 // byte array offsets, len = Len()+1
	owner *ColWriter
	gen   uint64
	m     []int32 // input index -> output index, -1 unknown
}

// split finds the rows of p and checks its levels and value count.
func (p *Page) split() error {
	leaf := p.leaf
	p.vals = p.page.Data()
	p.data, p.offs = p.vals.Data()
	nvals := 0
	switch {
	case p.dict != nil:
		p.idx = p.vals.Int32()
		nvals = len(p.idx)
		for _, i := range p.idx {
			if i < 0 || int(i) >= len(p.dict.m) {
				return fmt.Errorf("dictionary index %d out of range [0, %d)", i, len(p.dict.m))
			}
		}
	case leaf.kind == parquet.ByteArray:
		nvals = max(len(p.offs)-1, 0)
	case leaf.kind == parquet.Boolean:
		nvals = -1 // bit-packed: checked against the levels below
	default:
		nvals = len(p.data) / fixedSize(leaf)
	}
	if leaf.maxRep == 0 {
		// Top-level required columns (the only unrepeated ones this
		// reader accepts): one value per row.
		if leaf.maxDef != 0 || len(p.page.RepetitionLevels()) != 0 || len(p.page.DefinitionLevels()) != 0 {
			return errors.New("unexpected levels in a top-level column")
		}
		p.rows = int(p.page.NumValues())
		if nvals >= 0 && nvals != p.rows {
			return fmt.Errorf("page has %d values for %d rows", nvals, p.rows)
		}
		if leaf.kind == parquet.Boolean && len(p.data)*8 < p.rows {
			return errors.New("page has too few boolean values")
		}
		return nil
	}
	p.rep, p.def = p.page.RepetitionLevels(), p.page.DefinitionLevels()
	if len(p.rep) != len(p.def) || len(p.rep) == 0 {
		return fmt.Errorf("page has %d repetition and %d definition levels", len(p.rep), len(p.def))
	}
	if p.rep[0] != 0 {
		return errors.New("page does not start a row")
	}
	p.rowLvl, p.rowVal = p.rowLvl[:0], p.rowVal[:0]
	v := int32(0)
	maxRep, maxDef := p.leaf.maxRep, p.leaf.maxDef
	def := p.def[:len(p.rep)]
	for i, r := range p.rep {
		d := def[i]
		if r > maxRep || d > maxDef {
			return fmt.Errorf("level (%d, %d) above the column's maximum (%d, %d)", r, d, maxRep, maxDef)
		}
		if r == 0 {
			p.rowLvl = append(p.rowLvl, int32(i))
			p.rowVal = append(p.rowVal, v)
		}
		if d == maxDef {
			v++
		}
	}
	p.rowLvl = append(p.rowLvl, int32(len(p.rep)))
	p.rowVal = append(p.rowVal, v)
	p.rows = len(p.rowLvl) - 1
	switch {
	case nvals >= 0 && int(v) != nvals:
		return fmt.Errorf("page has %d values, its levels say %d", nvals, v)
	case nvals < 0 && len(p.data)*8 < int(v):
		return errors.New("page has too few boolean values")
	}
	return nil
}

// fixedSize is the size of one PLAIN value of a fixed-width column.
func fixedSize(leaf *Leaf) int {
	switch leaf.kind {
	case parquet.Int32, parquet.Float:
		return 4
	case parquet.FixedLenByteArray:
		return leaf.size
	default:
		return 8
	}
}

// ColReader reads one column chunk of a row group, a page at a time. Its
// zero value is closed; Open starts a chunk. Released pages are kept for
// reuse of their row arrays across chunks.
type ColReader struct {
	leaf  *Leaf
	pages *parquet.FilePages
	cur   *Page // page being read, nil when none
	next  int32 // its next row
	dict  *dictRemap
	free  []*Page // released pages, for reuse of their row arrays
}

// Open starts reading chunk pages of column leaf. The reader must be
// closed (or zero).
func (c *ColReader) Open(leaf *Leaf, pages *parquet.FilePages) {
	c.leaf, c.pages = leaf, pages
}

// ReadRows sets the cells of column col of the next n rows: with w =
// len(cells)/n columns per row, row r's cell is cells[r*w+col]. It adds a
// count to every page it took rows from to refs. io.EOF: the chunk ended
// before n rows.
func (c *ColReader) ReadRows(n, col int, cells []Cell, refs []*Page) ([]*Page, error) {
	var counted *Page // page already in refs
	w := 0
	if n > 0 {
		w = len(cells) / n
	}
	for r := 0; r < n; r++ {
		for c.cur == nil || int(c.next) == c.cur.rows {
			if err := c.nextPage(); err != nil {
				return refs, err
			}
		}
		if c.cur != counted {
			c.cur.refs++
			refs = append(refs, c.cur)
			counted = c.cur
		}
		cells[r*w+col] = Cell{Page: c.cur, Row: c.next}
		c.next++
	}
	return refs, nil
}

// nextPage moves to the next page of the chunk; io.EOF at its end.
func (c *ColReader) nextPage() error {
	c.releaseCur()
	page, err := c.pages.ReadPage()
	if err != nil {
		return err
	}
	var p *Page
	if n := len(c.free); n > 0 {
		p, c.free = c.free[n-1], c.free[:n-1]
	} else {
		p = &Page{}
	}
	*p = Page{page: page, refs: 1, leaf: c.leaf, rowLvl: p.rowLvl, rowVal: p.rowVal}
	c.cur, c.next = p, 0
	if d := page.Dictionary(); d != nil {
		if c.dict == nil || c.dict.dict != d {
			vals := d.Page().Data()
			data, offs := vals.Data()
			c.dict = &dictRemap{dict: d, data: data, offs: offs, m: make([]int32, d.Len())}
		}
		p.dict = c.dict
	}
	return p.split()
}

func (c *ColReader) releaseCur() {
	if c.cur == nil {
		return
	}
	p := c.cur
	c.cur = nil
	p.Release()
	if p.refs == 0 {
		c.free = append(c.free, p)
	}
}

// Finish checks that the chunk has no rows left and closes the reader.
func (c *ColReader) Finish() error {
	if c.cur != nil && int(c.next) < c.cur.rows {
		return errors.New("column chunk holds more rows than its row group")
	}
	for {
		err := c.nextPage()
		if errors.Is(err, io.EOF) {
			c.Close()
			return nil
		}
		if err != nil {
			return err
		}
		if c.cur.rows > 0 {
			return errors.New("column chunk holds more rows than its row group")
		}
	}
}

// Close releases the current page and the chunk's pages.
func (c *ColReader) Close() {
	c.releaseCur()
	c.dict = nil
	if c.pages != nil {
		_ = c.pages.Close()
		c.pages = nil
	}
}

// Cell is one row of one column: row Row of page Page (nil: a cell not
// read). It is valid while its page holds a count.
type Cell struct {
	Page *Page
	Row  int32
}

// RowBatch is a batch of rows of one row group, by column: row r's Cell
// of column c is cells[r*w+c], w the number of columns.
type RowBatch struct {
	n     int
	w     int
	cells []Cell
	refs  []*Page // pages the cells point into, one count each
}

// Len is the number of rows in the batch.
func (b *RowBatch) Len() int { return b.n }

// Columns returns row r's cells, indexed by column.
func (b *RowBatch) Columns(r int) []Cell {
	return b.cells[r*b.w : (r+1)*b.w : (r+1)*b.w]
}

// Reset releases the batch's pages: its rows must no longer be in use.
func (b *RowBatch) Reset() {
	for _, p := range b.refs {
		p.Release()
	}
	clear(b.refs)
	b.refs = b.refs[:0]
	clear(b.cells)
	b.n = 0
}

// Read fills b (reset) with the next n rows of the row group cols read,
// one reader per column.
func (b *RowBatch) Read(cols []ColReader, n int) error {
	b.w = len(cols)
	if need := n * b.w; cap(b.cells) < need {
		b.cells = make([]Cell, need)
	}
	b.cells = b.cells[:n*b.w]
	for c := range cols {
		var err error
		b.refs, err = cols[c].ReadRows(n, c, b.cells, b.refs)
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("column %d has fewer rows than its row group", c)
		}
		if err != nil {
			return fmt.Errorf("column %d: %w", c, err)
		}
	}
	b.n = n
	return nil
}
