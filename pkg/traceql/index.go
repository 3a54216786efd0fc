package traceql

import (
	"bytes"
	"encoding/hex"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// spanRow is one span of the trace with its place in it.
type spanRow struct {
	rs     *tracev1.ResourceSpans
	ss     *tracev1.ScopeSpans
	sp     *tracev1.Span
	parent int32 // index of the parent in the span tree, -1 for roots and disconnected spans
}

// state is the per-Eval index of a trace plus scratch space. States are
// pooled per Query; nothing in a state outlives the Eval that used it.
type state struct {
	td    *tracev1.TracesData
	spans []spanRow

	indexed  bool // parent links and child counts computed
	children []int32
	byID     map[uint64]int32
	dup      []int32 // index+1 of a second span with the same ID
	tparent  []int32 // resolved parent, connected or not
	conn     []bool  // reachable from a root
	visit    []uint8
	stack    []int32

	root                 int32 // the root for rootName and rootServiceName, -1 if none
	traceStart, traceEnd uint64
	traceIDHex           string

	ev   *tracev1.Span_Event
	link *tracev1.Span_Link

	all   []int32
	top   sset
	topIn [1]*sset

	// scratch for structural operators
	markA, markB []bool
	cnt          []int32
	lconn, rconn []int32
}

func (st *state) reset(td *tracev1.TracesData) {
	st.td = td
	st.spans = st.spans[:0]
	st.indexed = false
	st.root = -1
	st.traceStart, st.traceEnd = 0, 0
	st.traceIDHex = ""
	st.ev, st.link = nil, nil
	first := true
	for _, rs := range td.GetResourceSpans() {
		if rs == nil {
			continue
		}
		for _, ss := range rs.ScopeSpans {
			if ss == nil {
				continue
			}
			for _, sp := range ss.Spans {
				if sp == nil {
					continue
				}
				if len(sp.ParentSpanId) == 0 && rs.Resource != nil && !hasChildOfLink(sp) {
					st.root = int32(len(st.spans)) // the last one wins, as in Tempo
				}
				if first || sp.StartTimeUnixNano < st.traceStart {
					st.traceStart = sp.StartTimeUnixNano
				}
				if first || sp.EndTimeUnixNano > st.traceEnd {
					st.traceEnd = sp.EndTimeUnixNano
				}
				first = false
				st.spans = append(st.spans, spanRow{rs: rs, ss: ss, sp: sp, parent: -1})
			}
		}
	}
}

// spanKey maps a span ID to a map key: IDs of up to 8 bytes big-endian,
// longer ones hashed (FNV-1a).
func spanKey(id []byte) uint64 {
	if len(id) <= 8 {
		var k uint64
		for _, b := range id {
			k = k<<8 | uint64(b)
		}
		return k
	}
	h := uint64(14695981039346656037)
	for _, b := range id {
		h ^= uint64(b)
		h *= 1099511628211
	}
	return h
}

// index builds the span tree as Tempo's nested set model does:
//   - roots are spans without a parent span ID;
//   - a span's parent is the span with its parent span ID; when two spans
//     share that ID (a Zipkin client/server pair) a server span hangs under
//     the client one and any other span under the server one;
//   - spans not reachable from a root (orphans, their subtrees, cycles) are
//     disconnected: structural operators never relate or return them;
//   - with no root, or more than two spans sharing an ID, every span is
//     disconnected.
//
// childCount counts the spans whose parent resolves to a span, connected or
// not.
func (st *state) index() {
	if st.indexed {
		return
	}
	st.indexed = true
	n := len(st.spans)
	if st.byID == nil {
		st.byID = make(map[uint64]int32, n)
	} else {
		clear(st.byID)
	}
	st.children = grow(st.children, n)
	st.conn = growBool(st.conn, n)
	st.dup = grow(st.dup, n) // second span with the same ID, +1
	tooMany := false
	hasRoot := false
	for i := range st.spans {
		sp := st.spans[i].sp
		if len(sp.ParentSpanId) == 0 {
			hasRoot = true
		}
		k := spanKey(sp.SpanId)
		if first, ok := st.byID[k]; !ok {
			st.byID[k] = int32(i)
		} else if st.dup[first] == 0 {
			st.dup[first] = int32(i) + 1
		} else {
			tooMany = true
		}
	}
	tparent := st.tparent[:0]
	for i := range st.spans {
		sp := st.spans[i].sp
		p := int32(-1)
		if len(sp.ParentSpanId) > 0 {
			if first, ok := st.byID[spanKey(sp.ParentSpanId)]; ok {
				if second := st.dup[first] - 1; second < 0 {
					p = first
				} else {
					want := tracev1.Span_SPAN_KIND_SERVER
					if sp.Kind == tracev1.Span_SPAN_KIND_SERVER {
						want = tracev1.Span_SPAN_KIND_CLIENT
					}
					switch {
					case st.spans[first].sp.Kind == want:
						p = first
					case st.spans[second].sp.Kind == want:
						p = second
					}
				}
			}
		}
		if p >= 0 {
			st.children[p]++
		}
		tparent = append(tparent, p)
	}
	st.tparent = tparent
	if tooMany || !hasRoot {
		return
	}
	// connected: reachable from a root. A span is connected iff walking up
	// its parents reaches a root; memoised in conn, with visit marks to stop
	// at cycles.
	state := st.visit[:0]
	for range st.spans {
		state = append(state, 0) // 0 unknown, 1 in progress, 2 done
	}
	st.visit = state
	stack := st.stack[:0]
	for i := range st.spans {
		if state[i] == 2 {
			continue
		}
		stack = stack[:0]
		j := int32(i)
		for j >= 0 && state[j] == 0 {
			state[j] = 1
			stack = append(stack, j)
			if len(st.spans[j].sp.ParentSpanId) == 0 {
				break
			}
			j = tparent[j]
		}
		var ok bool
		switch {
		case j < 0:
			ok = false // parent missing
		case state[j] == 1:
			ok = len(st.spans[j].sp.ParentSpanId) == 0 // reached the root we started at, or a cycle
		default:
			ok = st.conn[j] // already known
		}
		for _, k := range stack {
			st.conn[k] = ok
			state[k] = 2
			if ok && len(st.spans[k].sp.ParentSpanId) > 0 {
				st.spans[k].parent = tparent[k]
			}
		}
	}
	st.stack = stack
}

func grow(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	s = s[:n]
	clear(s)
	return s
}

func growBool(s []bool, n int) []bool {
	if cap(s) < n {
		return make([]bool, n)
	}
	s = s[:n]
	clear(s)
	return s
}

func (st *state) traceID() string {
	if st.traceIDHex == "" {
		for _, r := range st.spans {
			if len(r.sp.TraceId) > 0 {
				st.traceIDHex = hex.EncodeToString(r.sp.TraceId)
				break
			}
		}
	}
	return st.traceIDHex
}

// hasChildOfLink reports whether a span links to a span of its own trace
// with opentracing.ref_type = child_of: Tempo does not take such a span
// for the trace's root.
func hasChildOfLink(sp *tracev1.Span) bool {
	for _, l := range sp.Links {
		if l == nil || !bytes.Equal(l.TraceId, sp.TraceId) {
			continue
		}
		for _, a := range l.Attributes {
			if a.GetKey() == "opentracing.ref_type" && a.GetValue().GetStringValue() == "child_of" {
				return true
			}
		}
	}
	return false
}
