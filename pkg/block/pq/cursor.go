package pq

import (
	"encoding/binary"
	"math"
)

// Rep returns the page's repetition levels (nil when the column's maximum
// is 0), one byte each. It aliases the page.
func (p *Page) Rep() []byte { return p.rep }

// Def returns the page's definition levels (nil when the column's maximum
// is 0). It aliases the page.
func (p *Page) Def() []byte { return p.def }

// MaxDef is the page's column's maximum definition level.
func (p *Page) MaxDef() byte { return p.leaf.maxDef }

// Int64At and friends read value i of a page of that kind.
func (p *Page) Int64At(i int) int64 {
	if p.dict != nil {
		return int64(binary.LittleEndian.Uint64(p.dict.data[8*p.idx[i]:]))
	}
	return int64(binary.LittleEndian.Uint64(p.data[8*i:]))
}

func (p *Page) Int32At(i int) int32 {
	if p.dict != nil {
		return int32(binary.LittleEndian.Uint32(p.dict.data[4*p.idx[i]:]))
	}
	return int32(binary.LittleEndian.Uint32(p.data[4*i:]))
}

func (p *Page) Float64At(i int) float64 {
	return math.Float64frombits(uint64(p.Int64At(i)))
}

// Cursor walks the level entries of one cell, keeping the index of the
// next defined value. Page is the cell's page (nil: a cell not read, which
// has no entries).
type Cursor struct {
	Page   *Page
	i, end int
	v      int
}

// NewCursor returns a cursor at the first entry of x.
func NewCursor(x Cell) Cursor {
	if x.Page == nil {
		return Cursor{}
	}
	ls, le := x.Page.Levels(x.Row)
	v, _ := x.Page.Values(x.Row)
	return Cursor{Page: x.Page, i: ls, end: le, v: v}
}

// Next moves to the next entry: ok false at the end; def tells whether
// the entry holds a value (at the column's maximum definition level), and
// then v is its value index.
func (c *Cursor) Next() (v int, def, ok bool) {
	if c.Page == nil || c.i >= c.end {
		return 0, false, false
	}
	d := c.Page.leaf.maxDef
	if c.Page.def != nil {
		d = c.Page.def[c.i]
	}
	c.i++
	if d == c.Page.leaf.maxDef {
		c.v++
		return c.v - 1, true, true
	}
	return 0, false, true
}

// NextLevels is Next with the entry's levels (0 for a level whose
// maximum is 0).
func (c *Cursor) NextLevels() (v int, rep, def byte, ok bool) {
	if c.Page == nil || c.i >= c.end {
		return 0, 0, 0, false
	}
	def = c.Page.leaf.maxDef
	if c.Page.def != nil {
		def = c.Page.def[c.i]
	}
	if c.Page.rep != nil {
		rep = c.Page.rep[c.i]
	}
	c.i++
	if def == c.Page.leaf.maxDef {
		c.v++
		return c.v - 1, rep, def, true
	}
	return 0, rep, def, true
}
