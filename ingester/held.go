package ingester

import (
	"slices"
	"time"
)

// Held fragments. With replication, the distributor picks one replica of
// each trace to build it into blocks and sends the fragment to the others
// with hold set (PushBytesRequest.hold). A held fragment is in the WAL,
// durable like any other, and indexed by (trace ID, pushID), but it is in
// no live trace, head block or search summary, so the replica spends no
// block-building CPU on it. It stays until one of:
//
//   - release: the builder's block holding it is in the backend
//     (ReleaseHeld, sent by the builder after its upload). The WAL may then
//     drop it.
//   - promote: the distributor asks (PromoteHeld; the builder failed the
//     push), or the fragment has been held for hold_timeout (the builder
//     never confirmed: it lost its disk, or its confirmation was lost). It
//     then joins the live traces and is built here. The worst outcome is a
//     trace built twice, which queries and compaction deduplicate by span.
//
// Both are written to the WAL (recordRelease, recordPromote) before they
// take effect, so a restart replays the same state. Held fragments answer
// FindTraceByID always (a builder that is down must not hide a trace),
// and searches when asked (searchHeld: the querier could not reach every
// ingester) or when an ingester of the ring is unhealthy.

// heldFrag is one held fragment's place in the WAL.
type heldFrag struct {
	part
	push  uint64
	spans uint32
}

// heldSeg counts the held fragments in one WAL segment and when the
// oldest of them arrived (unix nanos), for hold_timeout.
type heldSeg struct {
	n     int
	since int64
}

// addHeldLocked indexes held fragment f appended at recPos.
func (i *instance) addHeldLocked(recPos walPos, f fragment, now int64) {
	p := part{seg: recPos.seg, off: recPos.off + int64(f.off), n: uint32(f.n)}
	i.held[f.id] = append(i.held[f.id], heldFrag{part: p, push: f.push, spans: f.spans})
	s := i.heldSegs[p.seg]
	if s == nil {
		s = &heldSeg{since: now}
		i.heldSegs[p.seg] = s
	}
	s.n++
	i.heldCount++
}

// takeHeldLocked removes the held fragments named by keys and returns them
// with their trace IDs (matched), in keys' order.
func (i *instance) takeHeldLocked(keys []heldKey, fn func(id [16]byte, h heldFrag)) (matched int) {
	for _, k := range keys {
		hs := i.held[k.id]
		for j := 0; j < len(hs); j++ {
			if hs[j].push != k.push {
				continue
			}
			h := hs[j]
			hs = slices.Delete(hs, j, j+1)
			j--
			i.dropHeldSegLocked(h.seg)
			matched++
			if fn != nil {
				fn(k.id, h)
			}
		}
		if len(hs) == 0 {
			delete(i.held, k.id)
		} else {
			i.held[k.id] = hs
		}
	}
	return matched
}

func (i *instance) dropHeldSegLocked(seg uint64) {
	i.heldCount--
	if s := i.heldSegs[seg]; s != nil {
		if s.n--; s.n <= 0 {
			delete(i.heldSegs, seg)
		}
	}
}

// releaseHeldLocked forgets the held fragments named by keys.
func (i *instance) releaseHeldLocked(keys []heldKey) int {
	return i.takeHeldLocked(keys, nil)
}

// promoteHeldLocked moves the held fragments named by keys into the live
// traces, as a replay adds fragments: no limit refuses them (they are
// acknowledged already).
func (i *instance) promoteHeldLocked(keys []heldKey, now int64) int {
	return i.takeHeldLocked(keys, func(id [16]byte, h heldFrag) {
		i.addPartLocked(id, h.part, h.push, h.spans, now)
	})
}

// expiredHeld returns the keys of held fragments in WAL segments whose
// oldest held fragment arrived before cutoff (unix nanos): those whose
// builder has not released them within hold_timeout.
func (i *instance) expiredHeld(cutoff int64) []heldKey {
	i.mu.RLock()
	defer i.mu.RUnlock()
	var segs []uint64
	for seg, s := range i.heldSegs {
		if s.since < cutoff {
			segs = append(segs, seg)
		}
	}
	if len(segs) == 0 {
		return nil
	}
	var keys []heldKey
	for id, hs := range i.held {
		for _, h := range hs {
			if slices.Contains(segs, h.seg) {
				keys = append(keys, heldKey{id: id, push: h.push})
			}
		}
	}
	return keys
}

// minHeldSegLocked is the lowest WAL segment holding a held fragment.
func (i *instance) minHeldSegLocked() uint64 {
	m := ^uint64(0)
	for seg := range i.heldSegs {
		m = min(m, seg)
	}
	return m
}

// heldParts appends the WAL parts of id's held fragments to parts.
func (i *instance) heldPartsLocked(id [16]byte, parts []part) []part {
	for _, h := range i.held[id] {
		parts = append(parts, h.part)
	}
	return parts
}

// holdTimeout is hold_timeout, or its default: long enough for the
// builder to keep a trace live, cut it and upload it
// (2 × max_block_duration + flush_op_timeout).
func (c *Config) holdTimeout() time.Duration {
	if c.HoldTimeout > 0 {
		return c.HoldTimeout
	}
	return 2*c.MaxBlockDuration + c.FlushOpTimeout
}
