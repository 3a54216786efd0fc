package block

import (
	"context"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"

	"github.com/rubatodb/rubato/pkg/backend"
)

// section is a prefetched byte range of an object.
type section struct {
	off  int64
	data []byte
}

// objectReaderAt is an io.ReaderAt over one backend object that serves reads
// falling inside a prefetched section from memory and fetches anything else
// with a ranged GET. A lookup prefetches the row group it needs and reuses
// the cached footer, so in the normal case it never falls back.
type objectReaderAt struct {
	ctx      context.Context
	be       backend.Backend
	key      string
	size     int64
	sections []section
}

func (r *objectReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s at negative offset %d", r.key, off)
	}
	end := off + int64(len(p))
	for _, s := range r.sections {
		if off >= s.off && end <= s.off+int64(len(s.data)) {
			return copy(p, s.data[off-s.off:]), nil
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

// rangeRowGroup presents a row group of a cached footer whose pages are read
// through a per-call io.ReaderAt, so one opened file serves concurrent
// lookups that each hold their own prefetched bytes.
type rangeRowGroup struct {
	*parquet.FileRowGroup
	chunks []parquet.ColumnChunk
}

func newRangeRowGroup(rg *parquet.FileRowGroup, ra io.ReaderAt) *rangeRowGroup {
	src := rg.ColumnChunks()
	chunks := make([]parquet.ColumnChunk, len(src))
	for i, c := range src {
		chunks[i] = rangeChunk{FileColumnChunk: c.(*parquet.FileColumnChunk), ra: ra}
	}
	return &rangeRowGroup{FileRowGroup: rg, chunks: chunks}
}

func (g *rangeRowGroup) ColumnChunks() []parquet.ColumnChunk { return g.chunks }
func (g *rangeRowGroup) Rows() parquet.Rows                  { return parquet.NewRowGroupRowReader(g) }

type rangeChunk struct {
	*parquet.FileColumnChunk
	ra io.ReaderAt
}

func (c rangeChunk) Pages() parquet.Pages { return c.PagesFrom(c.ra) }
