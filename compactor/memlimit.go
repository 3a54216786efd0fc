package compactor

import (
	"math"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync"
)

// memoryLimiter sets the Go runtime's soft memory limit while compaction
// jobs run. Without one the garbage collector lets the heap grow to twice
// the live heap (GOGC=100) before collecting, so a merge whose live heap
// is 250 MB shows 500 MB of RSS; with a limit it collects earlier and RSS
// stays near the live heap plus the limit's slack.
//
// The limit is the process's live heap when the first job starts plus
// budget, so the components sharing the process (-target=all) keep their
// memory. It is left alone when something else set one (GOMEMLIMIT, or
// another compactor in the process), and removed when the last job ends.
type memoryLimiter struct {
	budget int64 // 0: never set a limit

	mu     sync.Mutex
	active int  // jobs running
	set    bool // the limit in force is ours
}

// acquire is called when a job starts; release when it ends.
func (l *memoryLimiter) acquire() {
	if l.budget <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active++
	if l.active > 1 {
		return
	}
	if debug.SetMemoryLimit(-1) != math.MaxInt64 {
		return // GOMEMLIMIT or someone else's limit: theirs wins
	}
	debug.SetMemoryLimit(liveHeapBytes() + l.budget)
	l.set = true
}

func (l *memoryLimiter) release() {
	if l.budget <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active--
	if l.active == 0 && l.set {
		debug.SetMemoryLimit(math.MaxInt64)
		l.set = false
	}
}

// liveHeapBytes is the heap the last garbage collection found live.
func liveHeapBytes() int64 {
	s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindUint64 {
		return 0
	}
	return int64(min(s[0].Value.Uint64(), math.MaxInt64/2))
}
