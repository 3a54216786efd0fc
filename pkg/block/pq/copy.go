package pq

import (
	"encoding/binary"
	"math"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// Copying rows between files of one layout (compaction) without parquet.Value: a
// Cell's levels are appended as bytes, its values as raw PLAIN bytes or
// typed slices, and its dictionary indexes through a per-input-dictionary
// remap table (dictRemap), so that each distinct value of an input column
// chunk is looked up in the output dictionary once per output chunk, not
// once per row.

// Fixed returns the value of a FIXED_LEN_BYTE_ARRAY top-level cell (such
// as the sorting column). It aliases the page.
func (x Cell) Fixed() []byte {
	i, _ := x.Page.Values(x.Row)
	n := x.Page.leaf.size
	return x.Page.data[i*n : (i+1)*n : (i+1)*n]
}

// Int32 and Int64 return the value of a top-level cell of that kind.
func (x Cell) Int32() int32 {
	i, _ := x.Page.Values(x.Row)
	return int32(binary.LittleEndian.Uint32(x.Page.data[4*i:]))
}

func (x Cell) Int64() int64 {
	i, _ := x.Page.Values(x.Row)
	return int64(binary.LittleEndian.Uint64(x.Page.data[8*i:]))
}

// AppendValues appends the cell's values as parquet.Values of column c
// (null for a level below the maximum definition level).
func (x Cell) AppendValues(dst []parquet.Value, c int) []parquet.Value {
	p := x.Page
	ls, le := p.Levels(x.Row)
	v, _ := p.Values(x.Row)
	for i := ls; i < le; i++ {
		var r, d byte
		if p.rep != nil {
			r, d = p.rep[i], p.def[i]
		}
		if d != p.leaf.maxDef {
			dst = append(dst, parquet.NullValue().Level(int(r), int(d), c))
			continue
		}
		dst = append(dst, p.Value(v).Level(int(r), int(d), c))
		v++
	}
	return dst
}

// Value returns value i of the page (aliasing it for byte arrays).
func (p *Page) Value(i int) parquet.Value {
	if p.dict != nil {
		return p.dict.dict.Index(p.idx[i])
	}
	return plainValue(p.leaf, p.data, p.offs, i)
}

// BytesAt returns byte-array value i of the page, aliasing it.
func (p *Page) BytesAt(i int) []byte {
	if p.dict != nil {
		j := p.idx[i]
		return p.dict.data[p.dict.offs[j]:p.dict.offs[j+1]]
	}
	return p.data[p.offs[i]:p.offs[i+1]]
}

// plainValue returns value i of raw PLAIN values of a column (booleans
// bit-packed).
func plainValue(leaf *Leaf, data []byte, offs []uint32, i int) parquet.Value {
	switch leaf.kind {
	case parquet.Boolean:
		return parquet.BooleanValue(data[i/8]>>(i%8)&1 == 1)
	case parquet.Int32:
		return parquet.Int32Value(int32(binary.LittleEndian.Uint32(data[4*i:])))
	case parquet.Int64:
		return parquet.Int64Value(int64(binary.LittleEndian.Uint64(data[8*i:])))
	case parquet.Double:
		return parquet.DoubleValue(math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:])))
	case parquet.FixedLenByteArray:
		return parquet.FixedLenByteArrayValue(data[i*leaf.size : (i+1)*leaf.size])
	default:
		return parquet.ByteArrayValue(data[offs[i]:offs[i+1]])
	}
}

// pendingRows is how many rows writeCells collects before writing them
// column by column.
const pendingRows = 256

// WriteCells appends one row read by ColReaders of the same layout, one
// cell per column (the page checks of ColReader hold). Rows are collected and
// written pendingRows at a time, one column after the other: a column's
// cells then come from a few pages per input, read in order, instead of
// every row touching every column's pages of every input (which made the
// copy wait on memory). A collected row keeps a count on each of its pages,
// so it outlives the RowBatch it came from.
func (fw *FileWriter) WriteCells(cells []Cell) error {
	for c, x := range cells[:len(fw.cols)] {
		x.Page.refs++
		fw.pending[c] = append(fw.pending[c], x)
	}
	fw.pendingRows++
	if fw.pendingRows >= pendingRows {
		return fw.flushPending()
	}
	return nil
}

// flushPending writes the collected rows.
func (fw *FileWriter) flushPending() error {
	if fw.pendingRows == 0 {
		return nil
	}
	for c := range fw.cols {
		col := &fw.cols[c]
		for _, x := range fw.pending[c] {
			col.appendCell(x)
			if err := fw.endRow(col); err != nil {
				return err
			}
		}
	}
	for c, cells := range fw.pending {
		for _, x := range cells {
			x.Page.Release()
		}
		clear(cells)
		fw.pending[c] = cells[:0]
	}
	fw.rgRows += int64(fw.pendingRows)
	fw.pendingRows = 0
	return nil
}

// appendCell appends one row of a column read from a file of the same layout. The page
// was checked when it was read (Page.split): levels within the maximum,
// values matching the levels, dictionary indexes in range.
func (col *ColWriter) appendCell(x Cell) {
	p, leaf := x.Page, col.leaf
	ls, le := p.Levels(x.Row)
	vs, ve := p.Values(x.Row)
	if leaf.maxRep > 0 {
		col.rep = append(col.rep, p.rep[ls:le]...)
		col.def = append(col.def, p.def[ls:le]...)
	}
	col.appendValueRange(p, vs, ve)
}

// appendValueRange appends values [vs, ve) of page p (levels not included).
func (col *ColWriter) appendValueRange(p *Page, vs, ve int) {
	if vs == ve {
		return
	}
	leaf := col.leaf
	col.pageValues += ve - vs
	if p.dict != nil {
		col.appendIndexed(p.dict, p.idx[vs:ve])
		return
	}
	switch {
	case col.dictMode:
		for i := vs; i < ve; i++ {
			col.idx = append(col.idx, col.dictIndex(p.data, p.offs, i))
		}
	case leaf.enc == format.DeltaBinaryPacked && leaf.kind == parquet.Int64:
		for i := vs; i < ve; i++ {
			col.i64 = append(col.i64, int64(binary.LittleEndian.Uint64(p.data[8*i:])))
		}
	case leaf.enc == format.DeltaBinaryPacked:
		for i := vs; i < ve; i++ {
			col.i32 = append(col.i32, int32(binary.LittleEndian.Uint32(p.data[4*i:])))
		}
	default:
		col.appendRaw(p.data, p.offs, vs, ve)
	}
}

// appendIndexed appends values given as indexes into an input dictionary.
func (col *ColWriter) appendIndexed(d *dictRemap, idx []int32) {
	if !col.dictMode {
		for _, i := range idx {
			col.appendRaw(d.data, d.offs, int(i), int(i)+1)
		}
		return
	}
	if d.owner != col || d.gen != col.gen {
		d.owner, d.gen = col, col.gen
		for i := range d.m {
			d.m[i] = -1
		}
	}
	for _, i := range idx {
		o := d.m[i]
		if o < 0 {
			o = col.dictIndex(d.data, d.offs, int(i))
			d.m[i] = o
		}
		col.idx = append(col.idx, o)
	}
}

// dictIndex returns the output dictionary index of raw value i.
func (col *ColWriter) dictIndex(data []byte, offs []uint32, i int) int32 {
	switch col.leaf.kind {
	case parquet.ByteArray:
		return col.dict.indexBytes(data[offs[i]:offs[i+1]])
	case parquet.Int32:
		return col.dict.indexNum(uint64(binary.LittleEndian.Uint32(data[4*i:])))
	default:
		return col.dict.indexNum(binary.LittleEndian.Uint64(data[8*i:]))
	}
}

// appendRaw appends raw values [i, j) (fixed width, or byte arrays with
// offs) to a page that is not dictionary-encoded nor delta-encoded: PLAIN
// (booleans one byte each, as ColWriter buffers them), or lengths and
// bytes for DELTA_LENGTH_BYTE_ARRAY.
func (col *ColWriter) appendRaw(data []byte, offs []uint32, i, j int) {
	if col.leaf.enc == format.DeltaLengthByteArray {
		for k := i; k < j; k++ {
			col.lens = append(col.lens, int32(offs[k+1]-offs[k]))
		}
		col.plain = append(col.plain, data[offs[i]:offs[j]]...)
		return
	}
	col.plain = appendPlainRange(col.plain, col.leaf, data, offs, i, j)
}

// appendPlainRange appends raw values [i, j) PLAIN-encoded (booleans one
// byte each, as ColWriter buffers them).
func appendPlainRange(dst []byte, leaf *Leaf, data []byte, offs []uint32, i, j int) []byte {
	switch leaf.kind {
	case parquet.Boolean:
		for k := i; k < j; k++ {
			dst = append(dst, data[k/8]>>(k%8)&1)
		}
		return dst
	case parquet.ByteArray:
		for k := i; k < j; k++ {
			b := data[offs[k]:offs[k+1]]
			dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
			dst = append(dst, b...)
		}
		return dst
	default:
		w := fixedSize(leaf)
		return append(dst, data[i*w:j*w]...)
	}
}
