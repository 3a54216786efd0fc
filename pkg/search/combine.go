package search

import (
	"slices"
	"strings"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// Combiner merges search results from several sources (ingesters, blocks,
// replicas, fragments of one trace) by trace ID. The zero value is not
// usable; call NewCombiner. Not safe for concurrent use.
//
// Merge rules, per trace ID: root service and root span names are taken
// from the first source that has them; the start time is the earliest; the
// duration is the longest; service stats take the per-service maximum; a
// spanset is identified by its by() attributes (as Tempo), and spansets with
// the same identity are merged by span ID (each span once), matched being
// the largest of the sources' counts and the number of distinct span IDs
// listed (exact when each source lists all its matches, a lower bound when
// spss cut them).
// Spans per spanset stay bounded by spss.
type Combiner struct {
	limit  int
	spss   int
	traces map[string]*rubatopb.TraceSearchMetadata
	// seen holds, per merged spanset, every span ID any source listed, also
	// those dropped by spss, so that matched counts each span once.
	seen map[*rubatopb.SpanSet]map[string]struct{}
}

// NewCombiner returns a combiner keeping at most limit traces (0 = no
// limit) and spss spans per spanset (0 = no limit).
func NewCombiner(limit, spss int) *Combiner {
	return &Combiner{limit: limit, spss: spss, traces: map[string]*rubatopb.TraceSearchMetadata{},
		seen: map[*rubatopb.SpanSet]map[string]struct{}{}}
}

// Add merges md. A trace not seen before is dropped once the limit is
// reached; Add reports whether md was kept or merged. md is owned by the
// combiner afterwards.
func (c *Combiner) Add(md *rubatopb.TraceSearchMetadata) bool {
	if md == nil {
		return false
	}
	if ex := c.traces[md.TraceID]; ex != nil {
		c.merge(ex, md)
		return true
	}
	if c.Full() {
		return false
	}
	if len(md.SpanSets) == 0 && md.SpanSet != nil {
		md.SpanSets = []*rubatopb.SpanSet{md.SpanSet}
	}
	for _, ss := range md.SpanSets {
		if c.spss > 0 && len(ss.Spans) > c.spss {
			ss.Spans = ss.Spans[:c.spss]
		}
	}
	if len(md.SpanSets) > 0 {
		md.SpanSet = md.SpanSets[0]
	}
	c.traces[md.TraceID] = md
	return true
}

// Count is the number of traces kept.
func (c *Combiner) Count() int { return len(c.traces) }

// Full reports whether the limit is reached.
func (c *Combiner) Full() bool { return c.limit > 0 && len(c.traces) >= c.limit }

// Result returns the traces, most recent start first (ties by trace ID), as
// Tempo orders them. The slice is new; the messages are shared.
func (c *Combiner) Result() []*rubatopb.TraceSearchMetadata {
	out := make([]*rubatopb.TraceSearchMetadata, 0, len(c.traces))
	for _, t := range c.traces {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *rubatopb.TraceSearchMetadata) int {
		if a.StartTimeUnixNano != b.StartTimeUnixNano {
			if a.StartTimeUnixNano > b.StartTimeUnixNano {
				return -1
			}
			return 1
		}
		return strings.Compare(a.TraceID, b.TraceID)
	})
	return out
}

func (c *Combiner) merge(ex, in *rubatopb.TraceSearchMetadata) {
	if ex.RootServiceName == "" {
		ex.RootServiceName = in.RootServiceName
	}
	if ex.RootTraceName == "" {
		ex.RootTraceName = in.RootTraceName
	}
	if in.StartTimeUnixNano != 0 && (ex.StartTimeUnixNano == 0 || in.StartTimeUnixNano < ex.StartTimeUnixNano) {
		ex.StartTimeUnixNano = in.StartTimeUnixNano
	}
	ex.DurationMs = max(ex.DurationMs, in.DurationMs)
	for svc, st := range in.ServiceStats {
		if ex.ServiceStats == nil {
			ex.ServiceStats = map[string]*rubatopb.ServiceStats{}
		}
		e := ex.ServiceStats[svc]
		if e == nil {
			e = &rubatopb.ServiceStats{}
			ex.ServiceStats[svc] = e
		}
		e.SpanCount = max(e.SpanCount, st.SpanCount)
		e.ErrorCount = max(e.ErrorCount, st.ErrorCount)
	}
	incoming := in.SpanSets
	if len(incoming) == 0 && in.SpanSet != nil {
		incoming = []*rubatopb.SpanSet{in.SpanSet}
	}
	for _, ss := range incoming {
		id := spansetID(ss)
		k := slices.IndexFunc(ex.SpanSets, func(e *rubatopb.SpanSet) bool { return spansetID(e) == id })
		if k < 0 {
			if c.spss > 0 && len(ss.Spans) > c.spss {
				ss.Spans = ss.Spans[:c.spss]
			}
			ex.SpanSets = append(ex.SpanSets, ss)
			continue
		}
		c.mergeSpanset(ex.SpanSets[k], ss)
	}
	if len(ex.SpanSets) > 0 {
		ex.SpanSet = ex.SpanSets[0]
	}
}

func (c *Combiner) mergeSpanset(ex, in *rubatopb.SpanSet) {
	seen := c.seen[ex]
	if seen == nil {
		seen = make(map[string]struct{}, len(ex.Spans)+len(in.Spans))
		for _, s := range ex.Spans {
			seen[s.SpanID] = struct{}{}
		}
		c.seen[ex] = seen
	}
	for _, s := range in.Spans {
		if _, ok := seen[s.SpanID]; ok {
			continue
		}
		seen[s.SpanID] = struct{}{}
		if c.spss <= 0 || len(ex.Spans) < c.spss {
			ex.Spans = append(ex.Spans, s)
		}
	}
	distinct := len(seen)
	if in.Matched > ex.Matched && len(in.Attributes) > 0 {
		// Aggregates (count(), avg() ...) of the larger match describe
		// more of the trace.
		ex.Attributes = in.Attributes
	}
	ex.Matched = max(ex.Matched, in.Matched, uint32(distinct))
	// Keep spans in a stable order whatever order the sources answered in.
	slices.SortStableFunc(ex.Spans, func(a, b *rubatopb.Span) int {
		if a.StartTimeUnixNano != b.StartTimeUnixNano {
			if a.StartTimeUnixNano < b.StartTimeUnixNano {
				return -1
			}
			return 1
		}
		return strings.Compare(a.SpanID, b.SpanID)
	})
}

// spansetID is a spanset's identity within a trace: its by() attributes
// (keys starting with "by", as Tempo's combiner).
func spansetID(ss *rubatopb.SpanSet) string {
	var b strings.Builder
	for _, a := range ss.Attributes {
		if strings.HasPrefix(a.Key, "by") {
			b.WriteString(a.Key)
			b.WriteByte(0)
			b.WriteString(a.GetValue().String())
			b.WriteByte(0)
		}
	}
	return b.String()
}
