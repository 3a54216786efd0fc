package compactor

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// The limiter changes a process-wide setting: these tests restore it and
// do not run in parallel.

func TestMemoryLimiter(t *testing.T) {
	prev := debug.SetMemoryLimit(math.MaxInt64)
	defer debug.SetMemoryLimit(prev)

	l := &memoryLimiter{budget: 300 << 20}
	l.acquire()
	got := debug.SetMemoryLimit(-1)
	require.GreaterOrEqual(t, got, int64(300<<20))
	require.Less(t, got, int64(math.MaxInt64))
	l.acquire() // a second job keeps the limit
	require.Equal(t, got, debug.SetMemoryLimit(-1))
	l.release()
	require.Equal(t, got, debug.SetMemoryLimit(-1), "one job still runs")
	l.release()
	require.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1), "removed after the last job")
}

func TestMemoryLimiterLeavesOthersLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(1 << 40) // as GOMEMLIMIT would
	defer debug.SetMemoryLimit(prev)
	l := &memoryLimiter{budget: 300 << 20}
	l.acquire()
	require.Equal(t, int64(1<<40), debug.SetMemoryLimit(-1))
	l.release()
	require.Equal(t, int64(1<<40), debug.SetMemoryLimit(-1))

	debug.SetMemoryLimit(math.MaxInt64)
	off := &memoryLimiter{} // memory_limit_bytes: 0
	off.acquire()
	require.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1))
	off.release()
}
