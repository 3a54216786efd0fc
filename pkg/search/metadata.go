package search

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/traceql"
)

// ErrInvalid wraps errors caused by the request (bad TraceQL, unsupported
// feature, bad tag name); callers turn it into 400 / InvalidArgument.
var ErrInvalid = errors.New("invalid search request")

// ParseQuery parses TraceQL; "" means `{}`. Parse and unsupported-feature
// errors wrap ErrInvalid.
func ParseQuery(q string) (*traceql.Query, error) {
	if strings.TrimSpace(q) == "" {
		q = "{}"
	}
	pq, err := traceql.Parse(q)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return pq, nil
}

// Match evaluates q over one whole trace and returns its search metadata,
// or nil when the trace does not match. spss bounds the spans listed per
// spanset (0 = all); matched is always the full count.
func Match(q *traceql.Query, id []byte, td *tracev1.TracesData, spss int) (*rubatopb.TraceSearchMetadata, error) {
	sets, err := q.Eval(td)
	if err != nil {
		return nil, err
	}
	if len(sets) == 0 {
		return nil, nil
	}
	return Metadata(id, td, sets, spss), nil
}

// Metadata builds Tempo's TraceSearchMetadata for a trace and its matching
// spansets: trace-level fields from the whole trace, spans with the values
// the query reports, spanSet = spanSets[0] (deprecated field, still read by
// Grafana).
func Metadata(id []byte, td *tracev1.TracesData, sets []traceql.Spanset, spss int) *rubatopb.TraceSearchMetadata {
	md := &rubatopb.TraceSearchMetadata{TraceID: TraceIDString(id)}
	var first, last uint64
	for _, rs := range td.GetResourceSpans() {
		svc := serviceName(rs)
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				if s := sp.StartTimeUnixNano; s != 0 && (first == 0 || s < first) {
					first = s
				}
				last = max(last, sp.EndTimeUnixNano, sp.StartTimeUnixNano)
				if len(sp.ParentSpanId) == 0 && md.RootTraceName == "" {
					md.RootTraceName = sp.Name
					md.RootServiceName = svc
				}
				if svc != "" {
					if md.ServiceStats == nil {
						md.ServiceStats = map[string]*rubatopb.ServiceStats{}
					}
					st := md.ServiceStats[svc]
					if st == nil {
						st = &rubatopb.ServiceStats{}
						md.ServiceStats[svc] = st
					}
					st.SpanCount++
					if sp.GetStatus().GetCode() == tracev1.Status_STATUS_CODE_ERROR {
						st.ErrorCount++
					}
				}
			}
		}
	}
	md.StartTimeUnixNano = first
	if last > first {
		md.DurationMs = uint32((last - first) / 1_000_000)
	}
	for _, set := range sets {
		out := &rubatopb.SpanSet{Matched: uint32(len(set.Spans)), Attributes: set.Attributes}
		spans := set.Spans
		if spss > 0 && len(spans) > spss {
			spans = spans[:spss]
		}
		for _, ms := range spans {
			sp := ms.Span
			d := uint64(0)
			if sp.EndTimeUnixNano > sp.StartTimeUnixNano {
				d = sp.EndTimeUnixNano - sp.StartTimeUnixNano
			}
			out.Spans = append(out.Spans, &rubatopb.Span{
				SpanID:            SpanIDString(sp.SpanId),
				Name:              sp.Name,
				StartTimeUnixNano: sp.StartTimeUnixNano,
				DurationNanos:     d,
				Attributes:        ms.Attributes,
			})
		}
		md.SpanSets = append(md.SpanSets, out)
	}
	if len(md.SpanSets) > 0 {
		md.SpanSet = md.SpanSets[0]
	}
	return md
}

// TraceBounds returns the earliest span start and latest span end of td in
// Unix nanoseconds (0, 0 for an empty trace).
func TraceBounds(td *tracev1.TracesData) (start, end uint64) {
	for _, rs := range td.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				if s := sp.StartTimeUnixNano; s != 0 && (start == 0 || s < start) {
					start = s
				}
				end = max(end, sp.EndTimeUnixNano, sp.StartTimeUnixNano)
			}
		}
	}
	return start, end
}

// InRange reports whether a trace spanning [start, end] (Unix nanoseconds)
// overlaps the request range [from, to] in Unix seconds (0 = open).
func InRange(start, end uint64, from, to uint32) bool {
	if from != 0 && end < uint64(from)*1e9 {
		return false
	}
	if to != 0 && start > (uint64(to)+1)*1e9 {
		return false
	}
	return true
}

// TraceIDString writes a trace ID as Tempo does: hex without leading zeros.
func TraceIDString(id []byte) string {
	return strings.TrimLeft(hex.EncodeToString(id), "0")
}

// SpanIDString writes a span ID as Tempo does: hex, left-padded with zeros
// to 16 digits.
func SpanIDString(id []byte) string {
	s := strings.TrimLeft(hex.EncodeToString(id), "0")
	if len(s) < 16 {
		s = strings.Repeat("0", 16-len(s)) + s
	}
	return s
}

func serviceName(rs *tracev1.ResourceSpans) string {
	for _, kv := range rs.GetResource().GetAttributes() {
		if kv.Key == "service.name" {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}
