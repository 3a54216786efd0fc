package pq

import (
	"fmt"
	"sort"

	"github.com/parquet-go/parquet-go"
)

// SeekReader is a ColReader that moves forward to given rows, skipping
// the pages between with the chunk's offset index (when it has one)
// instead of decoding them. Its zero value is closed and never read.
type SeekReader struct {
	ColReader
	base int64 // row index of the current page's first row, -1: none
	oi   parquet.OffsetIndex
	page int // index of the current page in oi
}

// Open starts reading chunk pages of column leaf, skipping pages with oi
// (nil: none). The reader must be closed (or zero).
func (s *SeekReader) Open(leaf *Leaf, pages *parquet.FilePages, oi parquet.OffsetIndex) {
	s.ColReader.Open(leaf, pages)
	s.base, s.oi, s.page = -1, oi, 0
}

// At returns the cell of row k (k never below a row asked before). A page
// after the next one is reached with SeekToRow at its first row (so that
// parquet-go returns it whole); the next page is read in order (SeekToRow
// would re-serve the page returned last, which ColReader has already
// released).
func (s *SeekReader) At(k int64) (Cell, error) {
	if s.base >= 0 && k < s.base+int64(s.cur.rows) {
		return Cell{Page: s.cur, Row: int32(k - s.base)}, nil
	}
	next := 0
	if s.base >= 0 {
		next = s.page + 1
	}
	if s.oi != nil {
		n := s.oi.NumPages()
		t := sort.Search(n, func(j int) bool { return s.oi.FirstRowIndex(j) > k }) - 1
		if t > next {
			first := s.oi.FirstRowIndex(t)
			if err := s.pages.SeekToRow(first); err != nil {
				return Cell{}, err
			}
			s.releaseCur()
			if err := s.nextPage(); err != nil {
				return Cell{}, err
			}
			s.base, s.page = first, t
			return s.check(k)
		}
	}
	if s.base < 0 {
		s.base, s.page = 0, 0
		if err := s.nextPage(); err != nil {
			return Cell{}, err
		}
	}
	for k >= s.base+int64(s.cur.rows) {
		s.base += int64(s.cur.rows)
		s.page++
		if err := s.nextPage(); err != nil {
			return Cell{}, err
		}
	}
	return s.check(k)
}

// check returns row k's cell of the current page, which must hold it.
func (s *SeekReader) check(k int64) (Cell, error) {
	if k < s.base || k >= s.base+int64(s.cur.rows) {
		return Cell{}, fmt.Errorf("page %d holds rows [%d, %d), not row %d", s.page, s.base, s.base+int64(s.cur.rows), k)
	}
	return Cell{Page: s.cur, Row: int32(k - s.base)}, nil
}
