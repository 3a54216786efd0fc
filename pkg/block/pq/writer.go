package pq

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/delta"
	"github.com/parquet-go/parquet-go/encoding/rle"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// FileWriter writes a Parquet file of a Layout's schema, in the layout
// pkg/block/FORMAT.md describes, without parquet-go's generic writer: each
// column appends a row's levels and values to flat per-page buffers (from
// parquet.Values, or copied from a page of another file of the same
// layout, copy.go) and encodes a page
// once it holds the page size. Rows never span pages. A row group's
// encoded pages are held in memory per column and written out column by
// column when the row group is cut, dictionary page first. The page index
// (every column index, then every offset index) and the footer follow the
// last row group. parquet-go's encoders and Thrift structs do the byte
// level work.
type FileWriter struct {
	lay      *Layout
	out      *bufio.Writer
	written  int64 // bytes written to out
	codec    *ZstdCodec
	pageSize int
	cols     []ColWriter
	rgRows   int64
	rgs      []format.RowGroup
	indexes  [][]pageIndex // per row group, by column
	numRows  int64
	thrift   thrift.CompactProtocol
	scratch  []byte // page body, before compression
	levels   []byte
	// Rows collected by writeCells, by column.
	pending     [][]Cell
	pendingRows int
}

// pageIndex is one column chunk's part of the page index.
type pageIndex struct {
	ci format.ColumnIndex
	oi format.OffsetIndex
}

// maxDictBytes stops a column chunk's dictionary growing: later pages of
// the chunk are PLAIN (FORMAT.md).
const maxDictBytes = 32 << 10

var parquetMagic = []byte("PAR1")

// NewFileWriter starts a file of layout lay on out, its pages compressed
// with codec and cut once they hold pageSize bytes.
func NewFileWriter(out io.Writer, lay *Layout, codec *ZstdCodec, pageSize int) (*FileWriter, error) {
	n := lay.NumColumns()
	fw := &FileWriter{lay: lay, out: bufio.NewWriterSize(out, 256<<10), codec: codec, pageSize: pageSize,
		cols: make([]ColWriter, n), pending: make([][]Cell, n)}
	for c := range fw.cols {
		fw.cols[c].init(&lay.leaves[c])
	}
	if err := fw.write(parquetMagic); err != nil {
		return nil, err
	}
	return fw, nil
}

func (fw *FileWriter) write(b []byte) error {
	n, err := fw.out.Write(b)
	fw.written += int64(n)
	return err
}

// WriteRow appends one shredded row: every column's values of the row
// (one slice per column, in column order), levels included. The caller
// checks the row's shape; a value whose levels or kind do not fit its
// column is an error, after which the file is unusable.
func (fw *FileWriter) WriteRow(cols [][]parquet.Value) error {
	if err := fw.flushPending(); err != nil {
		return err
	}
	if len(cols) != len(fw.cols) {
		return fmt.Errorf("row has %d columns, want %d", len(cols), len(fw.cols))
	}
	for c := range cols {
		col := &fw.cols[c]
		if err := col.AppendValues(cols[c]); err != nil {
			return fmt.Errorf("column %d: %w", c, err)
		}
		if err := fw.endRow(col); err != nil {
			return err
		}
	}
	fw.rgRows++
	return nil
}

// endRow counts a row appended to col and encodes its page when full.
func (fw *FileWriter) endRow(col *ColWriter) error {
	col.pageRows++
	if col.bufferedBytes() >= fw.pageSize {
		return fw.flushPage(col)
	}
	return nil
}

// Size estimates the file size so far: bytes written, pages encoded but
// held, and the raw size of buffered values (not of rows writeCells
// collected).
func (fw *FileWriter) Size() int64 {
	n := fw.written
	for c := range fw.cols {
		n += int64(len(fw.cols[c].pages)) + int64(fw.cols[c].bufferedBytes())
	}
	return n
}

// flushPage encodes and compresses col's buffered page.
func (fw *FileWriter) flushPage(col *ColWriter) error {
	if col.pageRows == 0 {
		return nil
	}
	leaf := col.leaf
	body := fw.scratch[:0]
	var err error
	if leaf.maxRep > 0 {
		body, err = fw.appendLevels(body, col.rep, leaf.repWidth)
		if err != nil {
			return err
		}
	}
	if leaf.maxDef > 0 {
		body, err = fw.appendLevels(body, col.def, leaf.defWidth)
		if err != nil {
			return err
		}
	}
	enc := format.Plain
	switch {
	case col.dictMode:
		enc = format.RLEDictionary
		fw.levels, err = (&rle.DictionaryEncoding{}).EncodeInt32(fw.levels[:0], col.idx)
		body = append(body, fw.levels...)
	case leaf.enc == format.DeltaBinaryPacked && leaf.kind == parquet.Int64:
		enc = format.DeltaBinaryPacked
		fw.levels, err = (&delta.BinaryPackedEncoding{}).EncodeInt64(fw.levels[:0], col.i64)
		body = append(body, fw.levels...)
	case leaf.enc == format.DeltaBinaryPacked:
		enc = format.DeltaBinaryPacked
		fw.levels, err = (&delta.BinaryPackedEncoding{}).EncodeInt32(fw.levels[:0], col.i32)
		body = append(body, fw.levels...)
	case leaf.enc == format.DeltaLengthByteArray:
		enc = format.DeltaLengthByteArray
		fw.levels, err = (&delta.BinaryPackedEncoding{}).EncodeInt32(fw.levels[:0], col.lens)
		body = append(body, fw.levels...)
		body = append(body, col.plain...)
	case leaf.kind == parquet.Boolean:
		body = appendBits(body, col.plain)
	default:
		body = append(body, col.plain...)
	}
	if err != nil {
		return fmt.Errorf("encode page of %v: %w", leaf.path, err)
	}
	fw.scratch = body
	if len(body) > math.MaxInt32 {
		return fmt.Errorf("page of %v too large", leaf.path)
	}
	start := len(col.pages)
	compressed, err := fw.codec.Encode(fw.levels[:0], body)
	if err != nil {
		return err
	}
	fw.levels = compressed
	numLevels := col.numLevels()
	hdr := format.PageHeader{
		Type:                 format.DataPage,
		UncompressedPageSize: int32(len(body)),
		CompressedPageSize:   int32(len(compressed)),
		DataPageHeader: thrift.New(format.DataPageHeader{
			NumValues:               int32(numLevels),
			Encoding:                enc,
			DefinitionLevelEncoding: format.RLE,
			RepetitionLevelEncoding: format.RLE,
		}),
	}
	if col.pages, err = fw.appendThrift(col.pages, &hdr); err != nil {
		return err
	}
	hdrLen := len(col.pages) - start
	col.pages = append(col.pages, compressed...)
	col.uncompressed += int64(hdrLen + len(body))
	col.chunkValues += int64(numLevels)
	if enc == format.RLEDictionary {
		col.dictPages++
	} else {
		col.otherPages++
	}
	col.encs |= 1 << enc
	col.pi.oi.PageLocations = append(col.pi.oi.PageLocations, format.PageLocation{
		Offset:             int64(start), // relative to the data pages; fixed in flushRowGroup
		CompressedPageSize: int32(len(col.pages) - start),
		FirstRowIndex:      col.chunkRows,
	})
	nulls := int64(numLevels - col.pageValues)
	col.pi.ci.NullPages = append(col.pi.ci.NullPages, col.pageValues == 0)
	col.pi.ci.NullCounts = append(col.pi.ci.NullCounts, nulls)
	if leaf.bounds && col.pageValues > 0 {
		// The sorting column: required, one value per row, rows ascending.
		col.pi.ci.MinValues = append(col.pi.ci.MinValues, bytes.Clone(col.plain[:leaf.size]))
		col.pi.ci.MaxValues = append(col.pi.ci.MaxValues, bytes.Clone(col.plain[len(col.plain)-leaf.size:]))
	} else {
		col.pi.ci.MinValues = append(col.pi.ci.MinValues, []byte{})
		col.pi.ci.MaxValues = append(col.pi.ci.MaxValues, []byte{})
	}
	col.chunkRows += int64(col.pageRows)
	col.resetPage()
	if col.dictMode && len(col.dict.plain) > maxDictBytes {
		col.dictFull = true // later pages of this chunk: PLAIN
	}
	col.dictMode = col.useDict()
	return nil
}

// appendLevels appends one level section of a v1 data page: its byte
// length (4 bytes, little-endian), then the RLE/bit-packed levels.
func (fw *FileWriter) appendLevels(dst, levels []byte, width int) ([]byte, error) {
	var err error
	fw.levels, err = (&rle.Encoding{BitWidth: width}).EncodeLevels(fw.levels[:0], levels)
	if err != nil {
		return dst, fmt.Errorf("encode levels: %w", err)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(fw.levels)))
	return append(dst, fw.levels...), nil
}

func (fw *FileWriter) appendThrift(dst []byte, v any) ([]byte, error) {
	b, err := thrift.Marshal(&fw.thrift, v)
	if err != nil {
		return dst, fmt.Errorf("encode parquet metadata: %w", err)
	}
	return append(dst, b...), nil
}

// writeThrift writes v and returns where it starts and its length.
func (fw *FileWriter) writeThrift(v any) (int64, int32, error) {
	start := fw.written
	var err error
	if fw.scratch, err = fw.appendThrift(fw.scratch[:0], v); err != nil {
		return 0, 0, err
	}
	if err := fw.write(fw.scratch); err != nil {
		return 0, 0, err
	}
	return start, int32(fw.written - start), nil
}

// FlushRowGroup encodes every column's last page and writes the row group
// (nothing when it has no rows).
func (fw *FileWriter) FlushRowGroup() error {
	if err := fw.flushPending(); err != nil {
		return err
	}
	if fw.rgRows == 0 {
		return nil
	}
	rg := format.RowGroup{
		NumRows:        fw.rgRows,
		SortingColumns: []format.SortingColumn{{ColumnIdx: int32(fw.lay.sortCol)}},
		FileOffset:     fw.written,
		Ordinal:        int16(len(fw.rgs)),
	}
	if len(fw.rgs) > math.MaxInt16 {
		return errors.New("too many row groups")
	}
	idx := make([]pageIndex, len(fw.cols))
	for c := range fw.cols {
		col := &fw.cols[c]
		if err := fw.flushPage(col); err != nil {
			return err
		}
		if col.chunkRows != fw.rgRows {
			return fmt.Errorf("column %d has %d rows, want %d", c, col.chunkRows, fw.rgRows)
		}
		chunkStart := fw.written
		md := format.ColumnMetaData{
			Type:         format.Type(col.leaf.kind),
			PathInSchema: col.leaf.path,
			Codec:        format.Zstd,
			NumValues:    col.chunkValues,
		}
		if col.dictPages > 0 {
			md.DictionaryPageOffset = chunkStart
			if err := fw.writeDictPage(col); err != nil {
				return err
			}
			md.EncodingStats = append(md.EncodingStats, format.PageEncodingStats{PageType: format.DictionaryPage, Encoding: format.Plain, Count: 1})
			col.encs |= 1 << format.Plain
		}
		md.DataPageOffset = fw.written
		for i := range col.pi.oi.PageLocations {
			col.pi.oi.PageLocations[i].Offset += fw.written
		}
		if err := fw.write(col.pages); err != nil {
			return err
		}
		if col.dictPages > 0 {
			md.EncodingStats = append(md.EncodingStats, format.PageEncodingStats{PageType: format.DataPage, Encoding: format.RLEDictionary, Count: col.dictPages})
		}
		if col.otherPages > 0 {
			e := col.leaf.enc
			if e == format.RLEDictionary {
				e = format.Plain // pages after the dictionary stopped growing
			}
			md.EncodingStats = append(md.EncodingStats, format.PageEncodingStats{PageType: format.DataPage, Encoding: e, Count: col.otherPages})
		}
		if col.leaf.maxRep > 0 || col.leaf.maxDef > 0 {
			col.encs |= 1 << format.RLE
		}
		for e := format.Encoding(0); e < 32; e++ {
			if col.encs&(1<<e) != 0 {
				md.Encoding = append(md.Encoding, e)
			}
		}
		md.TotalCompressedSize = fw.written - chunkStart
		md.TotalUncompressedSize = col.uncompressed
		if col.leaf.bounds {
			ci := &col.pi.ci
			md.Statistics = format.Statistics{MinValue: ci.MinValues[0], MaxValue: ci.MaxValues[len(ci.MaxValues)-1]}
			ci.BoundaryOrder = format.Ascending
		}
		rg.Columns = append(rg.Columns, format.ColumnChunk{MetaData: md})
		rg.TotalByteSize += md.TotalUncompressedSize
		rg.TotalCompressedSize += md.TotalCompressedSize
		idx[c] = col.pi
		col.resetChunk()
	}
	fw.rgs = append(fw.rgs, rg)
	fw.indexes = append(fw.indexes, idx)
	fw.numRows += fw.rgRows
	fw.rgRows = 0
	return nil
}

// writeDictPage writes col's dictionary as a PLAIN dictionary page.
func (fw *FileWriter) writeDictPage(col *ColWriter) error {
	compressed, err := fw.codec.Encode(fw.levels[:0], col.dict.plain)
	if err != nil {
		return err
	}
	fw.levels = compressed
	hdr := format.PageHeader{
		Type:                 format.DictionaryPage,
		UncompressedPageSize: int32(len(col.dict.plain)),
		CompressedPageSize:   int32(len(compressed)),
		DictionaryPageHeader: thrift.New(format.DictionaryPageHeader{
			NumValues: int32(col.dict.len()),
			Encoding:  format.Plain,
		}),
	}
	h, err := fw.appendThrift(fw.scratch[:0], &hdr)
	if err != nil {
		return err
	}
	fw.scratch = h
	col.uncompressed += int64(len(h) + len(col.dict.plain))
	if err := fw.write(h); err != nil {
		return err
	}
	return fw.write(compressed)
}

// Close writes the last row group, the page index and the footer, with
// the key-value metadata kv. It does not close the underlying writer.
func (fw *FileWriter) Close(kv []format.KeyValue, createdBy string) error {
	if err := fw.FlushRowGroup(); err != nil {
		return err
	}
	// The page index: every column index, then every offset index.
	var err error
	for r := range fw.rgs {
		for c := range fw.rgs[r].Columns {
			cc := &fw.rgs[r].Columns[c]
			if cc.ColumnIndexOffset, cc.ColumnIndexLength, err = fw.writeThrift(&fw.indexes[r][c].ci); err != nil {
				return err
			}
		}
	}
	for r := range fw.rgs {
		for c := range fw.rgs[r].Columns {
			cc := &fw.rgs[r].Columns[c]
			if cc.OffsetIndexOffset, cc.OffsetIndexLength, err = fw.writeThrift(&fw.indexes[r][c].oi); err != nil {
				return err
			}
		}
	}
	fw.indexes = nil
	md := format.FileMetaData{
		Version:          2,
		Schema:           fw.lay.schema,
		NumRows:          fw.numRows,
		RowGroups:        fw.rgs,
		KeyValueMetadata: kv,
		CreatedBy:        createdBy,
		ColumnOrders:     fw.lay.columnOrders,
	}
	if fw.scratch, err = fw.appendThrift(fw.scratch[:0], &md); err != nil {
		return err
	}
	fw.scratch = binary.LittleEndian.AppendUint32(fw.scratch, uint32(len(fw.scratch)))
	fw.scratch = append(fw.scratch, parquetMagic...)
	if err := fw.write(fw.scratch); err != nil {
		return err
	}
	return fw.out.Flush()
}

// DataEnd is the offset just past the last row group's pages.
func (fw *FileWriter) DataEnd() int64 {
	var end int64
	for _, rg := range fw.rgs {
		for _, c := range rg.Columns {
			end = max(end, ChunkStart(&c.MetaData)+c.MetaData.TotalCompressedSize)
		}
	}
	return end
}

// ColWriter buffers one column's current page and row group chunk.
type ColWriter struct {
	leaf *Leaf

	// The page being filled.
	rep, def   []byte  // levels, one byte each (nil when the max is 0)
	plain      []byte  // PLAIN values (booleans: one byte each, packed on encode), or DELTA_LENGTH_BYTE_ARRAY bytes
	lens       []int32 // DELTA_LENGTH_BYTE_ARRAY lengths
	idx        []int32 // dictionary indexes (dictMode)
	i64        []int64 // DELTA_BINARY_PACKED values
	i32        []int32
	pageRows   int
	pageValues int  // defined values (def == maxDef)
	dictMode   bool // this page is dictionary-encoded

	// The column chunk of the current row group.
	dict         dictionary
	dictFull     bool // the dictionary stopped growing: pages are PLAIN
	pages        []byte
	pi           pageIndex
	chunkRows    int64
	chunkValues  int64
	uncompressed int64
	dictPages    int32
	otherPages   int32
	encs         uint32 // bit set of encodings used
	gen          uint64 // counts column chunks: dictRemap tables are valid for one
}

func (col *ColWriter) init(leaf *Leaf) {
	col.leaf = leaf
	col.dict.init(leaf.kind)
	col.dictMode = col.useDict()
}

func (col *ColWriter) useDict() bool {
	return col.leaf.enc == format.RLEDictionary && !col.dictFull
}

func (col *ColWriter) numLevels() int {
	switch {
	case col.leaf.maxDef > 0:
		return len(col.def)
	case col.leaf.maxRep > 0:
		return len(col.rep)
	}
	return col.pageValues
}

// bufferedBytes is the raw size of the page being filled.
func (col *ColWriter) bufferedBytes() int {
	return len(col.rep) + len(col.def) + len(col.plain) + 4*len(col.lens) + 4*len(col.idx) + 8*len(col.i64) + 4*len(col.i32)
}

func (col *ColWriter) resetPage() {
	col.rep, col.def, col.plain = col.rep[:0], col.def[:0], col.plain[:0]
	col.idx, col.i64, col.i32, col.lens = col.idx[:0], col.i64[:0], col.i32[:0], col.lens[:0]
	col.pageRows, col.pageValues = 0, 0
}

func (col *ColWriter) resetChunk() {
	col.gen++
	col.dict.reset()
	col.dictFull = false
	col.dictMode = col.useDict()
	col.pages = col.pages[:0]
	col.pi = pageIndex{}
	col.chunkRows, col.chunkValues, col.uncompressed = 0, 0, 0
	col.dictPages, col.otherPages, col.encs = 0, 0, 0
}

var errLevels = errors.New("value levels do not fit the column")

// AppendValues appends one row's values (levels included) of the column.
// The caller ends the row (FileWriter.WriteColumns does).
func (col *ColWriter) AppendValues(vals []parquet.Value) error {
	leaf := col.leaf
	if len(vals) == 0 || vals[0].RepetitionLevel() != 0 {
		return errors.New("row does not start with repetition level 0")
	}
	for i := range vals {
		v := &vals[i]
		r, d := v.RepetitionLevel(), v.DefinitionLevel()
		if r > int(leaf.maxRep) || d > int(leaf.maxDef) || (i > 0 && r == 0) {
			return errLevels
		}
		if leaf.maxRep > 0 {
			col.rep = append(col.rep, byte(r))
		}
		if leaf.maxDef > 0 {
			col.def = append(col.def, byte(d))
		}
		if d != int(leaf.maxDef) {
			continue
		}
		if v.Kind() != leaf.kind {
			return fmt.Errorf("value of kind %v in a column of kind %v", v.Kind(), leaf.kind)
		}
		col.pageValues++
		switch {
		case col.dictMode:
			switch leaf.kind {
			case parquet.ByteArray:
				col.idx = append(col.idx, col.dict.indexBytes(v.ByteArray()))
			case parquet.Int32:
				col.idx = append(col.idx, col.dict.indexNum(uint64(uint32(v.Int32()))))
			default:
				col.idx = append(col.idx, col.dict.indexNum(uint64(v.Int64())))
			}
		case leaf.enc == format.DeltaBinaryPacked:
			if leaf.kind == parquet.Int64 {
				col.i64 = append(col.i64, v.Int64())
			} else {
				col.i32 = append(col.i32, v.Int32())
			}
		case leaf.enc == format.DeltaLengthByteArray:
			b := v.ByteArray()
			col.lens = append(col.lens, int32(len(b)))
			col.plain = append(col.plain, b...)
		default:
			col.plain = appendPlain(col.plain, leaf.kind, v)
		}
	}
	if leaf.maxRep == 0 && len(vals) != 1 {
		return errLevels
	}
	return nil
}

// appendPlain appends v PLAIN-encoded (a boolean as one byte).
func appendPlain(dst []byte, kind parquet.Kind, v *parquet.Value) []byte {
	switch kind {
	case parquet.Boolean:
		if v.Boolean() {
			return append(dst, 1)
		}
		return append(dst, 0)
	case parquet.Int32:
		return binary.LittleEndian.AppendUint32(dst, uint32(v.Int32()))
	case parquet.Int64:
		return binary.LittleEndian.AppendUint64(dst, uint64(v.Int64()))
	case parquet.Double:
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.Double()))
	case parquet.FixedLenByteArray:
		return append(dst, v.ByteArray()...)
	default:
		b := v.ByteArray()
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
		return append(dst, b...)
	}
}

// appendBits appends booleans (one byte each, 0 or 1) bit-packed, least
// significant bit first, as PLAIN encodes them.
func appendBits(dst, bools []byte) []byte {
	for i := 0; i < len(bools); i += 8 {
		var b byte
		for j, v := range bools[i:min(i+8, len(bools))] {
			b |= (v & 1) << j
		}
		dst = append(dst, b)
	}
	return dst
}

// dictionary is one column chunk's dictionary: its values PLAIN-encoded in
// index order (the dictionary page), and a map from value to index.
type dictionary struct {
	kind  parquet.Kind
	plain []byte
	n     int32
	bytes map[string]int32
	nums  map[uint64]int32
}

func (d *dictionary) init(kind parquet.Kind) {
	d.kind = kind
	d.bytes = make(map[string]int32)
	d.nums = make(map[uint64]int32)
}

func (d *dictionary) len() int { return int(d.n) }

func (d *dictionary) reset() {
	d.plain, d.n = d.plain[:0], 0
	clear(d.bytes)
	clear(d.nums)
}

func (d *dictionary) indexBytes(b []byte) int32 {
	if i, ok := d.bytes[string(b)]; ok {
		return i
	}
	i := d.n
	d.n++
	d.bytes[string(b)] = i
	d.plain = binary.LittleEndian.AppendUint32(d.plain, uint32(len(b)))
	d.plain = append(d.plain, b...)
	return i
}

// indexNum indexes an INT32 (zero-extended) or INT64 value.
func (d *dictionary) indexNum(x uint64) int32 {
	if i, ok := d.nums[x]; ok {
		return i
	}
	i := d.n
	d.n++
	d.nums[x] = i
	if d.kind == parquet.Int32 {
		d.plain = binary.LittleEndian.AppendUint32(d.plain, uint32(x))
	} else {
		d.plain = binary.LittleEndian.AppendUint64(d.plain, x)
	}
	return i
}

// NumRowGroups is the number of row groups written so far.
func (fw *FileWriter) NumRowGroups() int { return len(fw.rgs) }

// WriteColumns appends one row column by column: fn appends the row's
// values of column c to col (with ColWriter.AppendValues or
// AppendFiltered), in column order. An error ends the row midway, after
// which the file is unusable.
func (fw *FileWriter) WriteColumns(fn func(c int, col *ColWriter) error) error {
	if err := fw.flushPending(); err != nil {
		return err
	}
	for c := range fw.cols {
		col := &fw.cols[c]
		if err := fn(c, col); err != nil {
			return fmt.Errorf("column %d: %w", c, err)
		}
		if err := fw.endRow(col); err != nil {
			return err
		}
	}
	fw.rgRows++
	return nil
}

// MaxDef is the column's maximum definition level.
func (col *ColWriter) MaxDef() byte { return col.leaf.maxDef }
