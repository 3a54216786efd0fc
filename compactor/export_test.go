package compactor

import (
	"context"
	"time"

	"github.com/grafana/dskit/services"
)

// Hooks for the external tests (package compactor_test).

// StartRing joins c to its ring as the service's start does, without
// starting its compaction loop.
func StartRing(ctx context.Context, c *Compactor) error { return c.startRing(ctx) }

// StopRing stops c's lifecycler and ring client.
func StopRing(c *Compactor) error { return c.stopRing(nil) }

// LeaveRing stops only c's lifecycler: c leaves the ring and keeps
// watching it.
func LeaveRing(c *Compactor) error {
	return services.StopAndAwaitTerminated(context.Background(), c.ring.Load().lifecycler)
}

// Owns is c's ownership of a ring key.
func Owns(c *Compactor, key string) bool { return c.owns(key) }

// SetBeforeCommit runs f after each job's output is written, before the
// ownership re-check and the marks.
func SetBeforeCommit(c *Compactor, f func(Job)) { c.beforeCommit = f }

// SetNow sets c's clock (retention and janitor cut-offs).
func SetNow(c *Compactor, now func() time.Time) { c.now = now }
