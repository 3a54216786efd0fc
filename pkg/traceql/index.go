package traceql

import (
	"encoding/binary"
	"encoding/hex"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// spanRow is one span of the trace with its place in it.
type spanRow struct {
	rs     *tracev1.ResourceSpans
	ss     *tracev1.ScopeSpans
	sp     *tracev1.Span
	parent int32 // index of the parent span, -1 if none in the trace
}

// state is the per-Eval index of a trace plus scratch space. States are
// pooled per Query; nothing in a state outlives the Eval that used it.
type state struct {
	td    *tracev1.TracesData
	spans []spanRow

	indexed  bool // parent links and child counts computed
	children []int32
	byID     map[uint64]int32

	root                 int32 // first span without a parent span ID, -1 if none
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
				if st.root < 0 && len(sp.ParentSpanId) == 0 {
					st.root = int32(len(st.spans))
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

func spanKey(id []byte) (uint64, bool) {
	if len(id) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(id), true
}

// index links spans to their parents by span ID. A span whose parent span
// ID is not in the trace has no parent. When span IDs repeat, the first
// span with the ID is the one others hang under.
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
	for i := range st.spans {
		if k, ok := spanKey(st.spans[i].sp.SpanId); ok {
			if _, dup := st.byID[k]; !dup {
				st.byID[k] = int32(i)
			}
		}
	}
	st.children = grow(st.children, n)
	for i := range st.spans {
		if k, ok := spanKey(st.spans[i].sp.ParentSpanId); ok {
			if p, ok := st.byID[k]; ok && p != int32(i) {
				st.spans[i].parent = p
				st.children[p]++
			}
		}
	}
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

// ancestorOf reports whether a is a proper ancestor of s. The walk is
// bounded by the span count so that a parent cycle cannot loop.
func (st *state) ancestorOf(a, s int32) bool {
	p := st.spans[s].parent
	for steps := 0; p >= 0 && steps <= len(st.spans); steps++ {
		if p == a {
			return true
		}
		p = st.spans[p].parent
	}
	return false
}
