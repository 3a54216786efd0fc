package pq

import (
	"context"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// RangeGetter fetches n bytes of an object from offset off (a backend's
// ranged GET).
type RangeGetter interface {
	GetRange(ctx context.Context, key string, off, n int64) ([]byte, error)
}

// Section is a prefetched byte range of an object.
type Section struct {
	Off  int64
	Data []byte
}

// ObjectReaderAt is an io.ReaderAt over one backend object that serves reads
// falling inside a prefetched section from memory and fetches anything else
// with a ranged GET. A lookup prefetches the row group it needs and reuses
// the cached footer, so in the normal case it never falls back.
type ObjectReaderAt struct {
	ctx      context.Context
	be       RangeGetter
	key      string
	size     int64
	sections []Section
}

// NewObjectReaderAt returns a reader of the object key of the given size
// that serves reads inside sections from memory. ctx bounds every GET.
func NewObjectReaderAt(ctx context.Context, be RangeGetter, key string, size int64, sections []Section) *ObjectReaderAt {
	return &ObjectReaderAt{ctx: ctx, be: be, key: key, size: size, sections: sections}
}

func (r *ObjectReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s at negative offset %d", r.key, off)
	}
	end := off + int64(len(p))
	for _, s := range r.sections {
		if off >= s.Off && end <= s.Off+int64(len(s.Data)) {
			return copy(p, s.Data[off-s.Off:]), nil
		}
	}
	if off >= r.size {
		return 0, io.EOF
	}
	n := int64(len(p))
	if end > r.size {
		n = r.size - off
	}
	data, err := r.be.GetRange(r.ctx, r.key, off, n)
	if err != nil {
		return 0, fmt.Errorf("read %s [%d, %d): %w", r.key, off, off+n, err)
	}
	if int64(len(data)) != n {
		return 0, fmt.Errorf("read %s [%d, %d): got %d bytes", r.key, off, off+n, len(data))
	}
	copy(p, data)
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// RangeRowGroup presents a row group of a cached footer whose pages are read
// through a per-call io.ReaderAt, so one opened file serves concurrent
// lookups that each hold their own prefetched bytes.
type RangeRowGroup struct {
	*parquet.FileRowGroup
	chunks []parquet.ColumnChunk
}

// NewRangeRowGroup returns rg reading its pages through ra.
func NewRangeRowGroup(rg *parquet.FileRowGroup, ra io.ReaderAt) *RangeRowGroup {
	src := rg.ColumnChunks()
	chunks := make([]parquet.ColumnChunk, len(src))
	for i, c := range src {
		chunks[i] = RangeChunk{FileColumnChunk: c.(*parquet.FileColumnChunk), ra: ra}
	}
	return &RangeRowGroup{FileRowGroup: rg, chunks: chunks}
}

// ColumnChunks returns the chunks, each a RangeChunk.
func (g *RangeRowGroup) ColumnChunks() []parquet.ColumnChunk { return g.chunks }
func (g *RangeRowGroup) Rows() parquet.Rows                  { return parquet.NewRowGroupRowReader(g) }

// RangeChunk is a column chunk of a RangeRowGroup: Pages reads through the
// row group's io.ReaderAt.
type RangeChunk struct {
	*parquet.FileColumnChunk
	ra io.ReaderAt
}

func (c RangeChunk) Pages() parquet.Pages { return c.PagesFrom(c.ra) }

// ChunkStart is the offset of a column chunk's first page (its dictionary
// page when it has one).
func ChunkStart(c *format.ColumnMetaData) int64 {
	if c.DictionaryPageOffset > 0 {
		return c.DictionaryPageOffset
	}
	return c.DataPageOffset
}
