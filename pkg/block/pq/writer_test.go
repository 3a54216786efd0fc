package pq

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	"github.com/stretchr/testify/require"
)

// testRow is a schema with no meaning, to show that pq needs none: every
// encoding and kind the writer implements, repeated and optional columns
// (optional under a repeated group: NewLayout refuses an optional
// top-level column, TestNewLayoutRefuses).
type testRow struct {
	ID    [8]byte  `parquet:"ID"`
	N     int64    `parquet:"N,delta"`
	Small int32    `parquet:"Small,delta"`
	Name  string   `parquet:"Name,dict"`
	Code  int32    `parquet:"Code,dict"`
	Ok    bool     `parquet:"Ok"`
	F     float64  `parquet:"F"`
	Items []item   `parquet:"Items"`
	Tags  []string `parquet:"Tags"`
}

type item struct {
	Key string `parquet:"Key,dict"`
	Val *int64 `parquet:"Val,optional"`
	Raw []byte `parquet:"Raw"`
}

const testSortCol = 0 // ID

// genRows returns n rows in ascending ID order, with few distinct names
// and codes (dictionary pages) and, past row n/2, many (the dictionary
// stops growing).
func genRows(seed uint64, n int) []testRow {
	rng := rand.New(rand.NewPCG(seed, seed))
	rows := make([]testRow, n)
	for i := range rows {
		r := &rows[i]
		binary.BigEndian.PutUint64(r.ID[:], uint64(i)*7+3)
		r.N = rng.Int64N(1 << 40)
		r.Small = rng.Int32N(1000) - 500
		r.Name = fmt.Sprintf("name-%d", rng.IntN(20))
		if i > n/2 {
			r.Name = fmt.Sprintf("unique-%032x%032x-%d", rng.Uint64(), rng.Uint64(), i)
		}
		r.Code = rng.Int32N(8)
		r.Ok = rng.IntN(2) == 0
		r.F = rng.NormFloat64()
		for range rng.IntN(4) {
			it := item{Key: fmt.Sprint("k", rng.IntN(5)), Raw: []byte(fmt.Sprint(rng.Uint32()))}
			if rng.IntN(2) == 0 {
				v := rng.Int64()
				it.Val = &v
			}
			r.Items = append(r.Items, it)
		}
		for range rng.IntN(3) {
			r.Tags = append(r.Tags, fmt.Sprint("t", rng.IntN(3)))
		}
	}
	return rows
}

func testLayout(t testing.TB) (*parquet.Schema, *Layout) {
	t.Helper()
	s := parquet.SchemaOf(testRow{})
	lay, err := NewLayout(s, testSortCol)
	require.NoError(t, err)
	return s, lay
}

// writeRows writes rows with FileWriter.WriteRow, a row group every
// rgRows rows, and returns the file.
func writeRows(t testing.TB, s *parquet.Schema, lay *Layout, rows []testRow, rgRows, pageSize int) []byte {
	t.Helper()
	codec, err := NewZstdCodec()
	require.NoError(t, err)
	defer codec.Close()
	var buf bytes.Buffer
	fw, err := NewFileWriter(&buf, lay, codec, pageSize)
	require.NoError(t, err)
	cols := make([][]parquet.Value, lay.NumColumns())
	var pr parquet.Row
	for i := range rows {
		pr = s.Deconstruct(pr[:0], &rows[i])
		pr.Range(func(c int, vals []parquet.Value) bool {
			cols[c] = vals
			return true
		})
		require.NoError(t, fw.WriteRow(cols))
		if (i+1)%rgRows == 0 {
			require.NoError(t, fw.FlushRowGroup())
		}
	}
	require.NoError(t, fw.Close([]format.KeyValue{{Key: "k", Value: "v"}}, "pq test"))
	require.Equal(t, (len(rows)+rgRows-1)/rgRows, fw.NumRowGroups())
	require.Equal(t, int64(buf.Len()), fw.DataEnd()+int64(binary.LittleEndian.Uint32(buf.Bytes()[buf.Len()-8:]))+8+indexBytes(t, buf.Bytes()))
	return buf.Bytes()
}

// indexBytes is the size of the page index of file data.
func indexBytes(t testing.TB, data []byte) int64 {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	var n int64
	for _, rg := range f.Metadata().RowGroups {
		for _, c := range rg.Columns {
			n += int64(c.ColumnIndexLength) + int64(c.OffsetIndexLength)
		}
	}
	return n
}

// readBack reads a file with parquet-go's own generic reader.
func readBack(t testing.TB, data []byte) []testRow {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	r := parquet.NewGenericReader[testRow](f)
	defer r.Close()
	var out []testRow
	buf := make([]testRow, 1)
	for {
		buf[0] = testRow{}
		n, err := r.Read(buf)
		if n == 1 {
			out = append(out, buf[0])
		}
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
	}
}

// TestFileWriterRoundTrip: a file written by FileWriter from shredded
// values reads back through parquet-go's reader as the rows written;
// pages of every encoding appear, the sorting column's page bounds are
// each page's first and last value, and no other column has bounds.
func TestFileWriterRoundTrip(t *testing.T) {
	s, lay := testLayout(t)
	rows := genRows(1, 3000)
	data := writeRows(t, s, lay, rows, 700, 1<<10)
	requireRows(t, rows, readBack(t, data))

	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	md := f.Metadata()
	require.Equal(t, []format.SortingColumn{{ColumnIdx: testSortCol}}, []format.SortingColumn(md.RowGroups[0].SortingColumns))
	encs := map[format.Encoding]bool{}
	cis, ois := f.ColumnIndexes(), f.OffsetIndexes()
	n := lay.NumColumns()
	first := 0
	for g, rg := range md.RowGroups {
		for c, cc := range rg.Columns {
			for _, st := range cc.MetaData.EncodingStats {
				encs[st.Encoding] = true
			}
			ci, oi := cis[g*n+c], ois[g*n+c]
			require.Len(t, ci.MinValues, len(oi.PageLocations))
			for p, loc := range oi.PageLocations {
				if c != testSortCol {
					require.Empty(t, ci.MinValues[p], "col %d", c)
					continue
				}
				end := rg.NumRows
				if p+1 < len(oi.PageLocations) {
					end = oi.PageLocations[p+1].FirstRowIndex
				}
				require.Equal(t, rows[first+int(loc.FirstRowIndex)].ID[:], ci.MinValues[p])
				require.Equal(t, rows[first+int(end)-1].ID[:], ci.MaxValues[p])
			}
		}
		first += int(rg.NumRows)
	}
	for _, e := range []format.Encoding{format.Plain, format.RLEDictionary, format.DeltaBinaryPacked, format.DeltaLengthByteArray} {
		require.True(t, encs[e], "no %v pages", e)
	}
	// Name's dictionary stopped growing in the later row groups.
	nameCol, ok := s.Lookup("Name")
	require.True(t, ok)
	nameEncs := map[format.Encoding]bool{}
	for _, rg := range md.RowGroups {
		for _, st := range rg.Columns[nameCol.ColumnIndex].MetaData.EncodingStats {
			if st.PageType == format.DataPage {
				nameEncs[st.Encoding] = true
			}
		}
	}
	require.True(t, nameEncs[format.RLEDictionary] && nameEncs[format.Plain], "%v", nameEncs)
}

// copyRows copies every row of file data into a new file with ColReader,
// RowBatch and FileWriter.WriteCells, batch rows at a time.
func copyRows(t testing.TB, lay *Layout, data []byte, batch, rgRows, pageSize int) []byte {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	codec, err := NewZstdCodec()
	require.NoError(t, err)
	defer codec.Close()
	var out bytes.Buffer
	fw, err := NewFileWriter(&out, lay, codec, pageSize)
	require.NoError(t, err)
	cols := make([]ColReader, lay.NumColumns())
	var b RowBatch
	written := 0
	for _, rg := range f.RowGroups() {
		for c, chunk := range rg.ColumnChunks() {
			cols[c].Open(lay.Leaf(c), chunk.(*parquet.FileColumnChunk).PagesFrom(bytes.NewReader(data)))
		}
		left := int(rg.NumRows())
		for left > 0 {
			n := min(batch, left)
			b.Reset() // its rows are collected by the writer, which holds their pages
			require.NoError(t, b.Read(cols, n))
			require.Equal(t, n, b.Len())
			for r := range n {
				require.NoError(t, fw.WriteCells(b.Columns(r)))
				if written++; written%rgRows == 0 {
					require.NoError(t, fw.FlushRowGroup())
				}
			}
			left -= n
		}
		for c := range cols {
			require.NoError(t, cols[c].Finish())
		}
	}
	b.Reset()
	require.NoError(t, fw.Close(nil, "pq test"))
	return out.Bytes()
}

// TestCopyRows: rows copied as cells, into row groups and pages cut
// elsewhere than the input's, read back as the rows written: dictionary
// pages into a growing dictionary (indexes remapped) and into a full one,
// PLAIN pages into a dictionary, delta and byte-array pages as values.
func TestCopyRows(t *testing.T) {
	s, lay := testLayout(t)
	rows := genRows(2, 2500)
	data := writeRows(t, s, lay, rows, 600, 1<<10)
	for _, tc := range []struct{ batch, rgRows, pageSize int }{{64, 2500, 4 << 10}, {7, 333, 512}, {1, 100, 1 << 10}} {
		t.Run(fmt.Sprint(tc), func(t *testing.T) {
			out := copyRows(t, lay, data, tc.batch, tc.rgRows, tc.pageSize)
			requireRows(t, rows, readBack(t, out))
		})
	}
}

// TestCursorAndFilter: a Cursor walks a cell's entries with their levels,
// and AppendFiltered keeps exactly the slots asked for.
func TestCursorAndFilter(t *testing.T) {
	s, lay := testLayout(t)
	rows := genRows(3, 200)
	data := writeRows(t, s, lay, rows, 200, 1<<10)
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	keyCol := -1
	if l, ok := s.Lookup("Items", "Key"); ok {
		keyCol = l.ColumnIndex
	}
	require.GreaterOrEqual(t, keyCol, 0)
	var cr ColReader
	cr.Open(lay.Leaf(keyCol), f.RowGroups()[0].ColumnChunks()[keyCol].(*parquet.FileColumnChunk).PagesFrom(bytes.NewReader(data)))
	defer cr.Close()
	cells := make([]Cell, 1)
	for i, row := range rows {
		refs, err := cr.ReadRows(1, 0, cells, nil)
		require.NoError(t, err)
		var keys []string
		cur := NewCursor(cells[0])
		for {
			v, rep, def, ok := cur.NextLevels()
			if !ok {
				break
			}
			if def == cur.Page.MaxDef() {
				keys = append(keys, string(cur.Page.BytesAt(v)))
			} else {
				require.Empty(t, row.Items, "row %d: an entry without a value only for no items", i)
			}
			require.LessOrEqual(t, rep, byte(1))
		}
		var want []string
		for _, it := range row.Items {
			want = append(want, it.Key)
		}
		require.Equal(t, want, keys, "row %d", i)

		if len(row.Items) > 0 {
			keep := make([]bool, len(row.Items))
			for j := range keep {
				keep[j] = j%2 == 0
			}
			lv, err := FilteredLevels(cells[0], 1, keep)
			require.NoError(t, err)
			require.Len(t, lv, (len(row.Items)+1)/2)
			for j, r := range lv {
				require.Equal(t, byte(min(j, 1)), r, "row %d", i)
			}
		}
		for _, p := range refs {
			p.Release()
		}
	}
}

// requireRows compares row by row (a diff of thousands of rows is slow).
func requireRows(t testing.TB, want, got []testRow) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, normalized(want[i]), normalized(got[i]), "row %d", i)
	}
}

// normalized makes empty lists nil: Parquet stores no difference.
func normalized(r testRow) testRow {
	if len(r.Items) == 0 {
		r.Items = nil
	}
	if len(r.Tags) == 0 {
		r.Tags = nil
	}
	items := make([]item, len(r.Items))
	for i, it := range r.Items {
		if len(it.Raw) == 0 {
			it.Raw = nil
		}
		items[i] = it
	}
	if r.Items != nil {
		r.Items = items
	}
	return r
}

// TestNewLayoutRefuses: schemas the writer or readers cannot handle are
// refused when the layout is made, not when a file is written or read.
func TestNewLayoutRefuses(t *testing.T) {
	type optionalTop struct {
		ID   [8]byte `parquet:"ID"`
		Note *string `parquet:"Note,optional"`
	}
	type sortByInt struct {
		ID int64 `parquet:"ID"`
	}
	type repeatedSort struct {
		ID [][8]byte `parquet:"ID"`
	}
	for _, s := range []*parquet.Schema{
		parquet.SchemaOf(optionalTop{}), parquet.SchemaOf(sortByInt{}), parquet.SchemaOf(repeatedSort{}),
	} {
		_, err := NewLayout(s, 0)
		require.Error(t, err, "%v", s)
	}
	_, err := NewLayout(parquet.SchemaOf(testRow{}), 99)
	require.Error(t, err)
}
