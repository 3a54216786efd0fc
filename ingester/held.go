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
//     (ReleaseHeld, sent by the builder after its upload). It still answers
//     reads for complete_block_timeout, as the builder's local copy of the
//     block does (a querier may not list the block before its next
//     blocklist poll), and then the WAL may drop it.
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

// heldFrag is one held fragment's place in the WAL. A released one stays
// (answering reads only) until its segment is truncated.
type heldFrag struct {
	part
	push     uint64
	spans    uint32
	released bool
}

// names reports whether h is the fragment k names, still held (not
// released).
func (h heldFrag) names(k heldKey) bool { return h.push == k.push && !h.released }

// heldSeg is what one WAL segment holds of held fragments: keys of every
// fragment held in it (to forget them when it is truncated), n of them not
// yet released, since when (unix nanos, the oldest arrival, for
// hold_timeout), and until when released ones must stay readable.
type heldSeg struct {
	keys      []heldKey
	n         int
	since     int64
	keepUntil int64
}

// addHeldLocked indexes held fragment f appended at recPos.
func (i *instance) addHeldLocked(recPos walPos, f fragment, now int64) {
	p := recPos.part(f)
	i.held[f.id] = append(i.held[f.id], heldFrag{part: p, push: f.push, spans: f.spans})
	s := i.heldSegs[p.seg]
	if s == nil {
		s = &heldSeg{since: now}
		i.heldSegs[p.seg] = s
	}
	s.keys = append(s.keys, heldKey{id: f.id, push: f.push})
	s.n++
	i.heldCount++
}

// eachHeldLocked calls fn for every fragment named by keys that is held and
// not released.
func (i *instance) eachHeldLocked(keys []heldKey, fn func(id [16]byte, h *heldFrag)) (matched int) {
	for _, k := range keys {
		hs := i.held[k.id]
		for j := range hs {
			if hs[j].names(k) {
				matched++
				fn(k.id, &hs[j])
			}
		}
	}
	return matched
}

// unholdLocked counts h, about to be released or promoted, out of its
// segment's and the instance's held fragments.
func (i *instance) unholdLocked(h *heldFrag) {
	i.heldCount--
	if s := i.heldSegs[h.seg]; s != nil {
		s.n--
	}
}

// releaseHeldLocked marks the held fragments named by keys released: their
// builder's block is in the backend. They keep answering reads, and their
// WAL segment stays, for keep (complete_block_timeout, which outlasts a
// querier's blocklist poll): until then a querier may not list that block,
// and a lookup that hears from a quorum of replicas must still find the
// spans on one of them.
func (i *instance) releaseHeldLocked(keys []heldKey, now int64, keep time.Duration) int {
	return i.eachHeldLocked(keys, func(_ [16]byte, h *heldFrag) {
		i.unholdLocked(h)
		h.released = true
		if s := i.heldSegs[h.seg]; s != nil {
			s.keepUntil = max(s.keepUntil, now+int64(keep))
		}
	})
}

// promoteHeldLocked moves the held fragments named by keys into the live
// traces, as a replay adds fragments: no limit refuses them (they are
// acknowledged already).
func (i *instance) promoteHeldLocked(keys []heldKey, now int64) int {
	var promoted []heldKey
	n := i.eachHeldLocked(keys, func(id [16]byte, h *heldFrag) {
		i.unholdLocked(h)
		i.addPartLocked(id, h.part, h.push, h.spans, now)
		promoted = append(promoted, heldKey{id: id, push: h.push})
	})
	for _, k := range promoted {
		i.held[k.id] = slices.DeleteFunc(i.held[k.id], func(h heldFrag) bool { return h.names(k) })
		if len(i.held[k.id]) == 0 {
			delete(i.held, k.id)
		}
	}
	return n
}

// expiredHeld returns the keys of held fragments, not released, in WAL
// segments whose oldest held fragment arrived before cutoff (unix nanos):
// those whose builder has not released them within hold_timeout.
func (i *instance) expiredHeld(cutoff int64) []heldKey {
	i.mu.RLock()
	defer i.mu.RUnlock()
	var keys []heldKey
	for seg, s := range i.heldSegs {
		if s.n == 0 || s.since >= cutoff {
			continue
		}
		for _, k := range s.keys {
			for _, h := range i.held[k.id] {
				if h.seg == seg && h.names(k) {
					keys = append(keys, k)
					break
				}
			}
		}
	}
	return keys
}

// minHeldSegLocked is the lowest WAL segment holding a held fragment, or a
// released one still to be kept at now.
func (i *instance) minHeldSegLocked(now int64) uint64 {
	m := ^uint64(0)
	for seg, s := range i.heldSegs {
		if s.n > 0 || s.keepUntil > now {
			m = min(m, seg)
		}
	}
	return m
}

// dropHeldBelow forgets the held fragments (released ones; minSeg kept the
// others) of WAL segments below low, which truncation has deleted.
func (i *instance) dropHeldBelow(low uint64) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for seg, s := range i.heldSegs {
		if seg >= low {
			continue
		}
		for _, k := range s.keys {
			hs := slices.DeleteFunc(i.held[k.id], func(h heldFrag) bool { return h.seg == seg })
			if len(hs) == 0 {
				delete(i.held, k.id)
			} else {
				i.held[k.id] = hs
			}
		}
		delete(i.heldSegs, seg)
	}
}

// heldPartsLocked appends the WAL parts of id's held fragments, released
// ones included, to parts.
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
