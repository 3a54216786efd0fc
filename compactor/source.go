package compactor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
)

// openSource opens an input block for the merge. It is the one place that
// picks the block API: the row-level API (block.Reader.Rows), so a trace
// present in one input only is copied as Parquet values and never decoded.
// newIterSource (Iterate, decode every trace) is kept as the reference
// implementation the tests compare against.
func openSource(ctx context.Context, be backend.Backend, m *block.Meta) source {
	return newRowSource(ctx, block.Open(be, m, nil))
}

// newSink wraps the output writer.
func newSink(w *block.Writer) sink { return rowSink{w: w} }

// rowSource reads a block with a block.RowReader. The row is valid until
// next is called again, which the merge does only after writing it.
type rowSource struct {
	ctx   context.Context
	r     *block.Reader
	rr    *block.RowReader
	curID []byte
	row   block.Row
	fail  error
	done  bool
}

func newRowSource(ctx context.Context, r *block.Reader) *rowSource {
	return &rowSource{ctx: ctx, r: r}
}

func (s *rowSource) next() bool {
	if s.done || s.fail != nil {
		return false
	}
	if s.rr == nil {
		rr, err := s.r.Rows(s.ctx)
		if err != nil {
			s.fail = fmt.Errorf("read block %s: %w", s.r.Meta().BlockID, err)
			return false
		}
		s.rr = rr
	}
	id, row, err := s.rr.Next()
	if errors.Is(err, io.EOF) {
		s.done = true
		return false
	}
	if err != nil {
		s.fail = fmt.Errorf("read block %s: %w", s.r.Meta().BlockID, err)
		return false
	}
	s.curID, s.row = id, row
	return true
}

func (s *rowSource) id() []byte { return s.curID }
func (s *rowSource) trace() (*tracev1.TracesData, error) {
	td, err := block.DecodeRow(s.row)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", s.r.Meta().BlockID, err)
	}
	return td, nil
}
func (s *rowSource) err() error { return s.fail }
func (s *rowSource) more() (bool, error) {
	if s.rr == nil || s.done {
		return false, nil
	}
	id, err := s.rr.PeekID()
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		s.fail = fmt.Errorf("read block %s: %w", s.r.Meta().BlockID, err)
		return false, s.fail
	}
	return bytes.Equal(id, s.curID), nil
}
func (s *rowSource) spanKeys(fn func([]byte, int32)) { s.row.SpanKeys(fn) }
func (s *rowSource) spanCount() int                  { return s.row.SpanCount() }
func (s *rowSource) close() {
	if s.rr != nil {
		_ = s.rr.Close()
	}
}

// rowSink writes single copies with AddRow (no conversion) and combined
// traces with Add.
type rowSink struct{ w *block.Writer }

func (k rowSink) addCopy(src source, part bool) error {
	if rs, ok := src.(*rowSource); ok {
		if part {
			return k.w.AddPartRow(rs.row)
		}
		return k.w.AddRow(rs.row)
	}
	td, err := src.trace()
	if err != nil {
		return err
	}
	return k.add(src.id(), td, part)
}

func (k rowSink) addFiltered(src source, keep []bool) error {
	if rs, ok := src.(*rowSource); ok {
		return k.w.AddPartRowSpans(rs.row, keep)
	}
	return addFilteredTrace(k, src, keep)
}

func (k rowSink) add(id []byte, td *tracev1.TracesData, part bool) error {
	if part {
		return k.w.AddPart(id, td)
	}
	return k.w.Add(id, td)
}
