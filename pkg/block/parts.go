package block

import (
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Multi-row traces. A trace with more than Config.MaxSpansPerRow spans is
// stored as several consecutive rows ("parts") with the same trace ID, so
// that no single row, and no copy of it held by a reader, writer or the
// compactor, grows with the trace: a 50 MB trace as one Parquet row is ~5M
// values held at once. Readers put the parts back together with joinPart.
//
// The join rule: part k's first ResourceSpans is merged into the trace's
// last ResourceSpans when their headers (resource and schema URL) are
// equal, and then, likewise, its first ScopeSpans into the last
// ScopeSpans when their headers (scope and schema URL) are equal.
// Everything else is appended. splitTrace only cuts where that rule gives
// back exactly the trace it split (TestSplitJoinLossless): inside one
// ScopeSpans (both headers equal: merged), or between two ResourceSpans or
// ScopeSpans whose headers differ (not merged). It never cuts between two
// neighbours with equal headers, which the rule would wrongly merge.
// Fields OTLP does not know are kept when parts are read back from
// protobuf: a header's travel with its copies, the TracesData's own with
// the first part.

// splitTrace returns td cut into parts of about limit spans (the last one
// may be smaller; a part grows past limit only where no cut is allowed).
// Parts share messages with td. A trace of at most limit spans, or limit
// <= 0, is returned whole.
func splitTrace(td *tracev1.TracesData, limit int) []*tracev1.TracesData {
	if limit <= 0 || countTraceSpans(td) <= limit {
		return []*tracev1.TracesData{td}
	}
	var (
		parts []*tracev1.TracesData
		cur   = &tracev1.TracesData{} // the first part keeps td's unknown fields
		n     int                     // spans in cur
		lastR *tracev1.ResourceSpans  // original message cur's last RS comes from
		lastS *tracev1.ScopeSpans     // original message cur's last SS comes from
		outR  *tracev1.ResourceSpans  // cur's last RS
		outS  *tracev1.ScopeSpans     // cur's last SS
	)
	copyUnknown(cur, td)
	// openRS / openSS append a copy of the header of rs / ss to cur.
	openRS := func(rs *tracev1.ResourceSpans) {
		outR = &tracev1.ResourceSpans{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl}
		copyUnknown(outR, rs)
		cur.ResourceSpans = append(cur.ResourceSpans, outR)
		lastR, lastS, outS = rs, nil, nil
	}
	openSS := func(ss *tracev1.ScopeSpans) {
		outS = &tracev1.ScopeSpans{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl}
		copyUnknown(outS, ss)
		outR.ScopeSpans = append(outR.ScopeSpans, outS)
		lastS = ss
	}
	for _, rs := range td.GetResourceSpans() {
		if rs == nil {
			rs = &tracev1.ResourceSpans{} // as on the wire
		}
		// A new ResourceSpans after spans in cur: the place to cut if its
		// header differs from cur's last one.
		if n >= limit && !rsHeaderEqual(lastR, rs) {
			parts, cur, n = append(parts, cur), &tracev1.TracesData{}, 0
		}
		openRS(rs)
		for _, ss := range rs.GetScopeSpans() {
			if ss == nil {
				ss = &tracev1.ScopeSpans{}
			}
			if n >= limit && outS != nil && !ssHeaderEqual(lastS, ss) {
				parts, cur, n = append(parts, cur), &tracev1.TracesData{}, 0
				openRS(rs)
			}
			openSS(ss)
			for _, sp := range ss.GetSpans() {
				if n >= limit {
					// Inside one ScopeSpans: both headers repeat in the
					// next part and the join merges them back.
					parts, cur, n = append(parts, cur), &tracev1.TracesData{}, 0
					openRS(rs)
					openSS(ss)
				}
				outS.Spans = append(outS.Spans, sp)
				n++
			}
		}
	}
	return append(parts, cur)
}

// joinPart appends part, the next part of a multi-row trace, to td with the
// join rule. part's messages end up in td (part must not be used after).
func joinPart(td, part *tracev1.TracesData) {
	rss := part.GetResourceSpans()
	if len(rss) == 0 {
		return
	}
	if k := len(td.ResourceSpans); k > 0 && rsHeaderEqual(td.ResourceSpans[k-1], rss[0]) {
		last, first := td.ResourceSpans[k-1], rss[0]
		sss := first.GetScopeSpans()
		if j := len(last.ScopeSpans); j > 0 && len(sss) > 0 && ssHeaderEqual(last.ScopeSpans[j-1], sss[0]) {
			last.ScopeSpans[j-1].Spans = append(last.ScopeSpans[j-1].Spans, sss[0].Spans...)
			sss = sss[1:]
		}
		last.ScopeSpans = append(last.ScopeSpans, sss...)
		rss = rss[1:]
	}
	td.ResourceSpans = append(td.ResourceSpans, rss...)
}

// Headers are compared on what a block stores: the resource or scope and
// the schema URL. Their own unknown fields are left out of the comparison
// (a block does not keep them, convert.go), so that no cut is made between
// two neighbours a stored trace could not tell apart; a header's copy
// carries them, so a part read back from protobuf keeps them.

func rsHeaderEqual(a, b *tracev1.ResourceSpans) bool {
	return a != nil && b != nil && a.GetSchemaUrl() == b.GetSchemaUrl() && proto.Equal(a.GetResource(), b.GetResource())
}

func ssHeaderEqual(a, b *tracev1.ScopeSpans) bool {
	return a != nil && b != nil && a.GetSchemaUrl() == b.GetSchemaUrl() && proto.Equal(a.GetScope(), b.GetScope())
}

func copyUnknown(dst, src proto.Message) {
	if u := src.ProtoReflect().GetUnknown(); len(u) > 0 {
		dst.ProtoReflect().SetUnknown(u)
	}
}

func countTraceSpans(td *tracev1.TracesData) int {
	n := 0
	for _, rs := range td.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	return n
}
