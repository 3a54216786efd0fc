package block

import (
	"bytes"
	"fmt"
	"math/bits"
	"sync"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// leafInfo is what the file writer (pqwriter.go) needs of one leaf column
// of the v1 schema.
type leafInfo struct {
	path     []string
	kind     parquet.Kind    // physical type
	enc      format.Encoding // Plain, RLEDictionary, DeltaBinaryPacked or DeltaLengthByteArray
	maxRep   byte
	maxDef   byte
	repWidth int // bits of a repetition level, 0 when maxRep is 0
	defWidth int
	bounds   bool // page and chunk min/max are written (TraceID only)
}

// layout is the v1 schema as the file writer sees it: leaves in column
// order, and the footer's schema and column orders.
type layout struct {
	leaves       [numColumns]leafInfo
	schema       []format.SchemaElement
	columnOrders []format.ColumnOrder
}

// v1Layout derives the layout once from the Go schema (schema.go). The
// footer's schema elements are taken from an empty file written by
// parquet-go with the same schema, so that they are exactly what
// parquet-go's reader expects (reader.go compares schemas on open).
var v1Layout = sync.OnceValues(func() (*layout, error) {
	s := schemaV1()
	l := &layout{}
	cols := s.Columns()
	if len(cols) != numColumns {
		return nil, fmt.Errorf("v1 schema has %d leaf columns, want %d", len(cols), numColumns)
	}
	for i, path := range cols {
		leaf, ok := s.Lookup(path...)
		if !ok || leaf.ColumnIndex != i {
			return nil, fmt.Errorf("v1 schema: column %v not found at %d", path, i)
		}
		info := leafInfo{
			path:   path,
			kind:   leaf.Node.Type().Kind(),
			enc:    format.Plain,
			maxRep: byte(leaf.MaxRepetitionLevel),
			maxDef: byte(leaf.MaxDefinitionLevel),
			bounds: i == colTraceID,
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
				return nil, fmt.Errorf("v1 schema: dictionary column %v of kind %v", path, info.kind)
			}
		case format.DeltaBinaryPacked:
			if info.kind != parquet.Int32 && info.kind != parquet.Int64 {
				return nil, fmt.Errorf("v1 schema: delta column %v of kind %v", path, info.kind)
			}
		default:
			return nil, fmt.Errorf("v1 schema: column %v has unsupported encoding %v", path, info.enc)
		}
		switch info.kind {
		case parquet.Boolean, parquet.Int32, parquet.Int64, parquet.Double, parquet.ByteArray:
		case parquet.FixedLenByteArray:
			if leaf.Node.Type().Length() != TraceIDSize {
				return nil, fmt.Errorf("v1 schema: fixed-length column %v of length %d", path, leaf.Node.Type().Length())
			}
		default:
			return nil, fmt.Errorf("v1 schema: column %v of unsupported kind %v", path, info.kind)
		}
		info.repWidth = bits.Len8(info.maxRep)
		info.defWidth = bits.Len8(info.maxDef)
		l.leaves[i] = info
	}
	var buf bytes.Buffer
	pw := parquet.NewWriter(&buf, s)
	if err := pw.Close(); err != nil {
		return nil, fmt.Errorf("v1 schema template: %w", err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		return nil, fmt.Errorf("v1 schema template: %w", err)
	}
	md := f.Metadata()
	l.schema, l.columnOrders = md.Schema, md.ColumnOrders
	return l, nil
})
