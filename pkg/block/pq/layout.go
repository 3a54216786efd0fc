package pq

import (
	"bytes"
	"fmt"
	"math/bits"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// Leaf is what the file writer and the column readers need of one leaf
// column of a schema.
type Leaf struct {
	path     []string
	kind     parquet.Kind    // physical type
	enc      format.Encoding // Plain, RLEDictionary, DeltaBinaryPacked or DeltaLengthByteArray
	maxRep   byte
	maxDef   byte
	repWidth int // bits of a repetition level, 0 when maxRep is 0
	defWidth int
	size     int  // length of a FIXED_LEN_BYTE_ARRAY value, 0 for other kinds
	bounds   bool // page and chunk min/max are written (the sorting column only)
}

// MaxDef is the column's maximum definition level.
func (l *Leaf) MaxDef() byte { return l.maxDef }

// Encoding is the encoding of the column's data pages (RLE_DICTIONARY
// columns fall back to PLAIN once a chunk's dictionary is full).
func (l *Leaf) Encoding() format.Encoding { return l.enc }

// FixedSize is the length of a value of a FIXED_LEN_BYTE_ARRAY column, 0
// for other kinds.
func (l *Leaf) FixedSize() int { return l.size }

// Layout is a schema as the file writer sees it: leaves in column order,
// the sorting column, and the footer's schema and column orders.
type Layout struct {
	leaves       []Leaf
	sortCol      int
	schema       []format.SchemaElement
	columnOrders []format.ColumnOrder
}

// NumColumns is the number of leaf columns.
func (l *Layout) NumColumns() int { return len(l.leaves) }

// Leaf returns leaf column c.
func (l *Layout) Leaf(c int) *Leaf { return &l.leaves[c] }

// NewLayout derives the layout of schema s, whose rows the caller writes
// in ascending order of leaf column sortCol: a required top-level
// FIXED_LEN_BYTE_ARRAY column, whose page and chunk bounds the writer
// records (the footer names it the sorting column). Every column has one of
// the encodings the writer implements, and is either required at the top
// level or under a repeated field: an optional column without repetition
// is refused, as the readers and the cell copy keep levels only for
// repeated columns. The footer's schema elements are
// taken from an empty file written by parquet-go with the same schema, so
// that they are exactly what parquet-go's reader expects.
func NewLayout(s *parquet.Schema, sortCol int) (*Layout, error) {
	l := &Layout{sortCol: sortCol}
	cols := s.Columns()
	if sortCol < 0 || sortCol >= len(cols) {
		return nil, fmt.Errorf("schema has no column %d to sort by", sortCol)
	}
	l.leaves = make([]Leaf, len(cols))
	for i, path := range cols {
		leaf, ok := s.Lookup(path...)
		if !ok || leaf.ColumnIndex != i {
			return nil, fmt.Errorf("schema: column %v not found at %d", path, i)
		}
		info := Leaf{
			path:   path,
			kind:   leaf.Node.Type().Kind(),
			enc:    format.Plain,
			maxRep: byte(leaf.MaxRepetitionLevel),
			maxDef: byte(leaf.MaxDefinitionLevel),
			bounds: i == sortCol,
		}
		if e := leaf.Node.Encoding(); e != nil {
			info.enc = e.Encoding()
		}
		switch info.enc {
		case format.Plain:
			if info.kind == parquet.ByteArray {
				// What parquet-go's writer used for byte arrays without
				// an encoding tag, which blocks written by it hold: the
				// lengths delta-encoded apart from the bytes, which zstd
				// then compresses better than interleaved lengths.
				info.enc = format.DeltaLengthByteArray
			}
		case format.RLEDictionary, format.PlainDictionary:
			info.enc = format.RLEDictionary
			if info.kind != parquet.ByteArray && info.kind != parquet.Int32 && info.kind != parquet.Int64 {
				return nil, fmt.Errorf("schema: dictionary column %v of kind %v", path, info.kind)
			}
		case format.DeltaBinaryPacked:
			if info.kind != parquet.Int32 && info.kind != parquet.Int64 {
				return nil, fmt.Errorf("schema: delta column %v of kind %v", path, info.kind)
			}
		default:
			return nil, fmt.Errorf("schema: column %v has unsupported encoding %v", path, info.enc)
		}
		switch info.kind {
		case parquet.Boolean, parquet.Int32, parquet.Int64, parquet.Double, parquet.ByteArray:
		case parquet.FixedLenByteArray:
			info.size = leaf.Node.Type().Length()
			if info.size <= 0 {
				return nil, fmt.Errorf("schema: fixed-length column %v of length %d", path, info.size)
			}
		default:
			return nil, fmt.Errorf("schema: column %v of unsupported kind %v", path, info.kind)
		}
		if info.maxRep == 0 && info.maxDef > 0 {
			// The readers and the cell copy keep levels only for
			// repeated columns (ColReader: one value per row otherwise).
			return nil, fmt.Errorf("schema: column %v is optional but not repeated", path)
		}
		if info.bounds && (info.kind != parquet.FixedLenByteArray || info.maxRep != 0 || info.maxDef != 0) {
			return nil, fmt.Errorf("schema: sorting column %v is not a required top-level fixed-length column", path)
		}
		info.repWidth = bits.Len8(info.maxRep)
		info.defWidth = bits.Len8(info.maxDef)
		l.leaves[i] = info
	}
	var buf bytes.Buffer
	pw := parquet.NewWriter(&buf, s)
	if err := pw.Close(); err != nil {
		return nil, fmt.Errorf("schema template: %w", err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		return nil, fmt.Errorf("schema template: %w", err)
	}
	md := f.Metadata()
	l.schema, l.columnOrders = md.Schema, md.ColumnOrders
	return l, nil
}
