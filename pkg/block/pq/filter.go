package pq

import "errors"

// Filtering a cell by slots at a nesting depth (Dremel levels), for a
// caller that drops subtrees of a row while copying it. In a column at
// depth L an entry with repetition level <= L starts a new slot at that
// depth: a container when its definition level is >= L, else a placeholder
// for an empty parent (dropped with its slot). Every entry up to the next
// slot belongs to it. Dropping a slot moves its repetition level onto the
// next kept slot (the smaller of the two), which is how Dremel encoding
// deletes a subtree.

// AppendFiltered appends the kept slots of a cell at the given depth,
// levels and values: keep[i] tells whether the cell's slot i at depth is
// kept (len(keep) must be the number of slots). The caller ends the row
// (FileWriter.WriteColumns does).
func (col *ColWriter) AppendFiltered(x Cell, depth int, keep []bool) error {
	return col.filterCell(x, depth, keep, true)
}

// FilteredLevels returns the repetition levels AppendFiltered would
// append for x (one byte each), and no values.
func FilteredLevels(x Cell, depth int, keep []bool) ([]byte, error) {
	var tmp ColWriter // collects levels only
	if err := tmp.filterCell(x, depth, keep, false); err != nil {
		return nil, err
	}
	return tmp.rep, nil
}

func (col *ColWriter) filterCell(x Cell, depth int, keep []bool, values bool) error {
	p := x.Page
	if p.rep == nil {
		return errors.New("filtered column without levels")
	}
	ls, le := p.Levels(x.Row)
	v, _ := p.Values(x.Row)
	maxDef := p.leaf.maxDef
	carry := byte(255) // smallest repetition level of the slots dropped since the last kept one
	kept, slot := false, -1
	run := -1 // first value of the current run of kept values
	for i := ls; i < le; i++ {
		r, d := p.rep[i], p.def[i]
		if int(r) <= depth {
			kept = false
			if int(d) >= depth {
				slot++
				if slot >= len(keep) {
					return errors.New("column has more slots than the row's spans")
				}
				kept = keep[slot]
			}
			if kept {
				r = min(r, carry)
				carry = 255
			} else {
				carry = min(carry, r)
			}
		}
		if kept {
			col.rep = append(col.rep, r)
			col.def = append(col.def, d)
		}
		if d != maxDef {
			continue
		}
		if values {
			switch {
			case kept && run < 0:
				run = v
			case !kept && run >= 0:
				col.appendValueRange(p, run, v)
				run = -1
			}
		}
		v++
	}
	if values && run >= 0 {
		col.appendValueRange(p, run, v)
	}
	if slot+1 != len(keep) {
		return errors.New("column has fewer slots than the row's spans")
	}
	return nil
}
