package block

import (
	"fmt"
	"sync"

	"github.com/rubatodb/rubato/pkg/block/pq"
)

// v1Layout derives the file layout of the v1 schema (schema.go) once:
// rows sorted by TraceID, whose page and chunk bounds the writer records.
var v1Layout = sync.OnceValues(func() (*pq.Layout, error) {
	l, err := pq.NewLayout(schemaV1(), colTraceID)
	if err != nil {
		return nil, fmt.Errorf("v1 schema: %w", err)
	}
	if l.NumColumns() != numColumns {
		return nil, fmt.Errorf("v1 schema has %d leaf columns, want %d", l.NumColumns(), numColumns)
	}
	if n := l.Leaf(colTraceID).FixedSize(); n != TraceIDSize {
		return nil, fmt.Errorf("v1 schema: TraceID column of length %d", n)
	}
	return l, nil
})
