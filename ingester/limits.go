package ingester

import (
	"time"

	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// Admission of pushes against a tenant's limits (max_traces_per_user,
// max_live_traces_bytes, max_bytes_per_trace) is atomic with the append:
//
//  1. reserve, under the instance lock, checks every fragment of the push
//     and, for the ones it accepts, takes what they will use at once: a new
//     trace's live entry (counted in len(live) and liveMem from that moment,
//     with no WAL parts yet), its WAL fragment's share of liveMem (a fragment
//     in flight costs as much as an indexed one), and its bytes in sizes. It
//     also pins the active WAL segment, the lowest one the record can land
//     in, so no truncation deletes it before it is indexed.
//  2. The record is appended to the WAL with no lock of the instance held,
//     so concurrent pushes share group commits (the fsync).
//  3. commit, under the instance lock, turns each reservation into a WAL
//     part; release, if the append failed, gives back exactly what reserve
//     took. Either way the pin goes.
//
// Every check therefore sees everything admitted before it, indexed or in
// flight, and concurrent pushes can never together go past a limit. A trace
// with a fragment in flight is not swept out of the live traces, so commit
// always finds the entry reserve made.
//
// max_bytes_per_trace counts a trace's bytes for as long as any part of it is
// live, in the head block or being cut, and then for sizeMemoryIdlePeriods ×
// trace_idle_period after it was written to a block (recent): spans arriving
// after a block cut continue the trace's count instead of starting over. The
// memory this takes is bounded by the traces cut in that window (about 80
// bytes each, BenchmarkRecentSizeMemory), and it is given back in order of
// cut as entries expire.

// sizeMemoryIdlePeriods is how many trace_idle_periods a trace's byte count
// is remembered after the trace is written to a block.
const sizeMemoryIdlePeriods = 3

// reservation is what reserve set aside for the accepted fragments of one
// push, in the order of accepted.
type reservation struct {
	accepted []int
	items    []reserved
	pinned   bool
	pin      uint64 // WAL segment pinned until commit or release
}

type reserved struct {
	id [16]byte
	n  int
}

// recentSize is the byte count of a trace written to a block, kept until
// expires (unix nanos).
type recentSize struct {
	bytes   int
	expires int64
}

type recentEntry struct {
	id      [16]byte
	expires int64
}

// reserve decides which fragments of a push are accepted, filling reasons
// for the others, and reserves what the accepted ones use (see above). A
// new trace is refused (MAX_LIVE_TRACES) when one more live trace would go
// past max_traces_per_user or max_live_traces_bytes; fragments of traces
// already live (or reserved by a push in flight) are not. A fragment that
// would take its trace past max_bytes_per_trace is refused
// (TRACE_TOO_LARGE). Held fragments (hold[k], held.go) are accepted with
// nothing reserved: their builder applies the limits, and the distributor
// reports its refusals. The caller must commit or release the reservation.
func (i *instance) reserve(ids, traces [][]byte, hold []bool, reasons []rubatopb.PushErrorReason, now int64) *reservation {
	lim := i.limits()
	r := &reservation{accepted: make([]int, 0, len(ids)), items: make([]reserved, 0, len(ids))}
	i.mu.Lock()
	defer i.mu.Unlock()
	for k := range ids {
		if k < len(hold) && hold[k] {
			r.accepted = append(r.accepted, k)
			continue
		}
		var id [16]byte
		copy(id[:], ids[k])
		t := i.live[id]
		if t == nil && !i.roomForNewTraceLocked(lim) {
			reasons[k] = rubatopb.PushErrorReason_MAX_LIVE_TRACES
			continue
		}
		n := len(traces[k])
		size := i.traceSizeLocked(id)
		if lim.MaxBytesPerTrace > 0 && size+n > lim.MaxBytesPerTrace {
			reasons[k] = rubatopb.PushErrorReason_TRACE_TOO_LARGE
			continue
		}
		if t == nil {
			t = &liveTrace{firstPush: now, lastAppend: now}
			i.live[id] = t
		}
		i.setInflightLocked(t, t.inflight+1)
		i.sizes[id] = size + n
		delete(i.recent, id) // counted in sizes again
		r.accepted = append(r.accepted, k)
		r.items = append(r.items, reserved{id: id, n: n})
	}
	if len(r.accepted) > 0 {
		r.pin, r.pinned = i.ing.wal.active(), true
		i.pinSegment(r.pin)
	}
	return r
}

// roomForNewTraceLocked reports whether one more live trace fits the
// limits. Reserved traces are in live already.
func (i *instance) roomForNewTraceLocked(lim *overrides.Limits) bool {
	if lim.MaxTracesPerUser > 0 && len(i.live)+1 > lim.MaxTracesPerUser {
		return false
	}
	return lim.MaxLiveTracesBytes <= 0 || i.liveMem+liveCost(1) <= lim.MaxLiveTracesBytes
}

// setInflightLocked sets t's fragments in flight, keeping liveMem equal to
// the sum of liveCost(parts+inflight) over live.
func (i *instance) setInflightLocked(t *liveTrace, inflight int) {
	p := len(t.parts)
	i.liveMem += liveCost(p+inflight) - liveCost(p+t.inflight)
	t.inflight = inflight
}

// commit indexes the fragments of r, appended to the WAL at recPos.
func (i *instance) commit(r *reservation, recPos walPos, frags []fragment, now int64) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, f := range frags {
		if f.hold {
			i.addHeldLocked(recPos, f, now) // reserve took nothing for it
			continue
		}
		t := i.live[f.id] // reserve made it, and sweep keeps it while inflight > 0
		// One fragment goes from in flight to indexed: parts+inflight, and
		// so liveMem, stay as reserved.
		t.inflight--
		i.appendPartLocked(t, recPos.part(f), f.push, f.spans, now)
	}
	i.unpinReservation(r)
}

// release gives back what reserve took for r, whose append failed.
func (i *instance) release(r *reservation) {
	now := i.ing.now().UnixNano()
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, it := range r.items {
		t := i.live[it.id]
		i.setInflightLocked(t, t.inflight-1)
		if len(t.parts) == 0 && t.inflight == 0 {
			delete(i.live, it.id)
		}
		i.sizes[it.id] -= it.n
		i.settleSizeLocked(it.id, now)
	}
	i.unpinReservation(r)
}

func (i *instance) unpinReservation(r *reservation) {
	if r.pinned {
		i.unpinSegment(r.pin)
		r.pinned = false
	}
}

// traceSizeLocked is the trace's byte count for max_bytes_per_trace.
func (i *instance) traceSizeLocked(id [16]byte) int {
	if s, ok := i.sizes[id]; ok {
		return s
	}
	return i.recent[id].bytes
}

// settleSizeLocked moves the trace's byte count from sizes to recent once no
// part of the trace is live, in the head block or being cut.
func (i *instance) settleSizeLocked(id [16]byte, now int64) {
	if _, ok := i.live[id]; ok {
		return
	}
	if i.head.traces[id] != nil {
		return
	}
	for _, h := range i.cutting {
		if h.traces[id] != nil {
			return
		}
	}
	s, ok := i.sizes[id]
	if !ok {
		return
	}
	delete(i.sizes, id)
	if s <= 0 {
		return
	}
	exp := now + int64(sizeMemoryIdlePeriods)*int64(i.ing.cfg.TraceIdlePeriod)
	i.recent[id] = recentSize{bytes: s, expires: exp}
	i.recentQ = append(i.recentQ, recentEntry{id: id, expires: exp})
}

// expireRecentLocked forgets byte counts of cut traces whose time is up.
// Entries expire in the order they were added.
func (i *instance) expireRecentLocked(now time.Time) {
	n := now.UnixNano()
	k := 0
	for ; k < len(i.recentQ) && i.recentQ[k].expires <= n; k++ {
		e := i.recentQ[k]
		if r, ok := i.recent[e.id]; ok && r.expires == e.expires {
			delete(i.recent, e.id)
		}
	}
	if k > 0 {
		clear(i.recentQ[:k])
		i.recentQ = i.recentQ[k:]
	}
}
