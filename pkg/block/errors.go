package block

import (
	"errors"
	"fmt"
)

// Errors returned by this package; check with errors.Is.
var (
	// ErrOutOfOrder means Writer.Add got a trace ID not greater than the
	// previous one (rows must be added in ascending order, no duplicates).
	ErrOutOfOrder = errors.New("block: trace id out of order")
	// ErrInvalidTraceID means a trace ID is not TraceIDSize bytes.
	ErrInvalidTraceID = errors.New("block: trace id must be 16 bytes")
	// ErrEmptyBlock means Writer.Close was called before any Add.
	ErrEmptyBlock = errors.New("block: no traces added")
	// ErrWriterClosed means the Writer was already closed or aborted.
	ErrWriterClosed = errors.New("block: writer closed")
	// ErrInvalidMeta means meta.json is malformed or breaks an invariant.
	ErrInvalidMeta = errors.New("block: invalid meta")
	// ErrInvalidBloom means a bloom shard is malformed.
	ErrInvalidBloom = errors.New("block: invalid bloom shard")
	// ErrCorrupt is wrapped by every CorruptError.
	ErrCorrupt = errors.New("block: corrupt block")
)

// CorruptError reports a block object whose bytes cannot be decoded.
type CorruptError struct {
	Key string // object key
	Err error  // what went wrong
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("block: corrupt %s: %v", e.Key, e.Err)
}

// Unwrap lets errors.Is match both ErrCorrupt and the cause.
func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }
