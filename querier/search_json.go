package querier

import (
	"encoding/base64"
	"errors"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// errJSONUTF8 is returned for a string that is not UTF-8 (protojson
// refuses those too).
var errJSONUTF8 = errors.New("search response: string is not valid UTF-8")

// appendSearchResponseJSON renders resp exactly as protojson.Marshal does
// in meaning (same names, zero fields omitted, 64-bit integers as strings,
// oneof values present even when zero, bytes base64, NaN and infinities as
// strings), about five times faster: /api/search answers are the hot path
// of the search API. TestSearchJSONMatchesProtojson and FuzzSearchJSON hold
// it to protojson.
func appendSearchResponseJSON(b []byte, resp *rubatopb.SearchResponse) ([]byte, error) {
	w := jsonWriter{b: b}
	w.open('{')
	if len(resp.GetTraces()) > 0 {
		w.key("traces")
		w.open('[')
		for _, t := range resp.Traces {
			w.elem()
			w.trace(t)
		}
		w.close(']')
	}
	if resp.GetMetrics() != nil {
		m := resp.Metrics
		w.key("metrics")
		w.open('{')
		w.u32("inspectedTraces", m.InspectedTraces)
		w.u64("inspectedBytes", m.InspectedBytes)
		w.u32("totalBlocks", m.TotalBlocks)
		w.u32("completedJobs", m.CompletedJobs)
		w.u32("totalJobs", m.TotalJobs)
		w.u64("totalBlockBytes", m.TotalBlockBytes)
		w.u64("inspectedSpans", m.InspectedSpans)
		w.close('}')
	}
	w.close('}')
	return w.b, w.err
}

// jsonWriter appends JSON; first tracks whether the open object or array
// has no member yet.
type jsonWriter struct {
	b     []byte
	first bool
	err   error
}

func (w *jsonWriter) open(c byte) { w.b = append(w.b, c); w.first = true }

func (w *jsonWriter) close(c byte) { w.b = append(w.b, c); w.first = false }

// elem starts an array element.
func (w *jsonWriter) elem() {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
}

// key starts an object member.
func (w *jsonWriter) key(k string) {
	w.elem()
	w.b = append(w.b, '"')
	w.b = append(w.b, k...) // member names are plain ASCII
	w.b = append(w.b, '"', ':')
}

func (w *jsonWriter) str(k, v string) {
	if v != "" {
		w.key(k)
		w.quote(v)
	}
}

func (w *jsonWriter) u32(k string, v uint32) {
	if v != 0 {
		w.key(k)
		w.b = strconv.AppendUint(w.b, uint64(v), 10)
	}
}

func (w *jsonWriter) u64(k string, v uint64) {
	if v != 0 {
		w.key(k)
		w.b = append(w.b, '"')
		w.b = strconv.AppendUint(w.b, v, 10)
		w.b = append(w.b, '"')
	}
}

func (w *jsonWriter) trace(t *rubatopb.TraceSearchMetadata) {
	w.open('{')
	w.str("traceID", t.GetTraceID())
	w.str("rootServiceName", t.GetRootServiceName())
	w.str("rootTraceName", t.GetRootTraceName())
	w.u64("startTimeUnixNano", t.GetStartTimeUnixNano())
	w.u32("durationMs", t.GetDurationMs())
	if t.GetSpanSet() != nil {
		w.key("spanSet")
		w.spanSet(t.SpanSet)
	}
	if len(t.GetSpanSets()) > 0 {
		w.key("spanSets")
		w.open('[')
		for _, ss := range t.SpanSets {
			w.elem()
			w.spanSet(ss)
		}
		w.close(']')
	}
	if len(t.GetServiceStats()) > 0 {
		names := make([]string, 0, len(t.ServiceStats))
		for n := range t.ServiceStats {
			names = append(names, n)
		}
		sort.Strings(names)
		w.key("serviceStats")
		w.open('{')
		for _, n := range names {
			st := t.ServiceStats[n]
			w.elem()
			w.quote(n)
			w.b = append(w.b, ':')
			w.open('{')
			w.u32("spanCount", st.GetSpanCount())
			w.u32("errorCount", st.GetErrorCount())
			w.close('}')
		}
		w.close('}')
	}
	w.close('}')
}

func (w *jsonWriter) spanSet(ss *rubatopb.SpanSet) {
	w.open('{')
	if len(ss.GetSpans()) > 0 {
		w.key("spans")
		w.open('[')
		for _, sp := range ss.Spans {
			w.elem()
			w.open('{')
			w.str("spanID", sp.GetSpanID())
			w.str("name", sp.GetName())
			w.u64("startTimeUnixNano", sp.GetStartTimeUnixNano())
			w.u64("durationNanos", sp.GetDurationNanos())
			w.keyValues("attributes", sp.GetAttributes())
			w.close('}')
		}
		w.close(']')
	}
	w.u32("matched", ss.GetMatched())
	w.keyValues("attributes", ss.GetAttributes())
	w.close('}')
}

func (w *jsonWriter) keyValues(k string, kvs []*commonv1.KeyValue) {
	if len(kvs) == 0 {
		return
	}
	w.key(k)
	w.open('[')
	for _, kv := range kvs {
		w.elem()
		w.keyValue(kv)
	}
	w.close(']')
}

func (w *jsonWriter) keyValue(kv *commonv1.KeyValue) {
	w.open('{')
	w.str("key", kv.GetKey())
	if kv.GetValue() != nil {
		w.key("value")
		w.anyValue(kv.Value)
	}
	w.close('}')
}

// anyValue writes an OTLP AnyValue; its oneof member is written even when
// zero, as protojson does for a set oneof.
func (w *jsonWriter) anyValue(v *commonv1.AnyValue) {
	w.open('{')
	switch x := v.GetValue().(type) {
	case *commonv1.AnyValue_StringValue:
		w.key("stringValue")
		w.quote(x.StringValue)
	case *commonv1.AnyValue_BoolValue:
		w.key("boolValue")
		w.b = strconv.AppendBool(w.b, x.BoolValue)
	case *commonv1.AnyValue_IntValue:
		w.key("intValue")
		w.b = append(w.b, '"')
		w.b = strconv.AppendInt(w.b, x.IntValue, 10)
		w.b = append(w.b, '"')
	case *commonv1.AnyValue_DoubleValue:
		w.key("doubleValue")
		w.float(x.DoubleValue)
	case *commonv1.AnyValue_BytesValue:
		w.key("bytesValue")
		w.b = append(w.b, '"')
		w.b = base64.StdEncoding.AppendEncode(w.b, x.BytesValue)
		w.b = append(w.b, '"')
	case *commonv1.AnyValue_ArrayValue:
		w.key("arrayValue")
		w.open('{')
		if vals := x.ArrayValue.GetValues(); len(vals) > 0 {
			w.key("values")
			w.open('[')
			for _, e := range vals {
				w.elem()
				w.anyValue(e)
			}
			w.close(']')
		}
		w.close('}')
	case *commonv1.AnyValue_KvlistValue:
		w.key("kvlistValue")
		w.open('{')
		w.keyValues("values", x.KvlistValue.GetValues())
		w.close('}')
	}
	w.close('}')
}

// float writes a double as JSON: NaN and infinities as protojson's
// strings, otherwise the shortest form that reads back the same.
func (w *jsonWriter) float(f float64) {
	switch {
	case math.IsNaN(f):
		w.b = append(w.b, `"NaN"`...)
		return
	case math.IsInf(f, 1):
		w.b = append(w.b, `"Infinity"`...)
		return
	case math.IsInf(f, -1):
		w.b = append(w.b, `"-Infinity"`...)
		return
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	w.b = strconv.AppendFloat(w.b, f, format, -1, 64)
}

const hexDigits = "0123456789abcdef"

// quote writes s as a JSON string; s must be UTF-8.
func (w *jsonWriter) quote(s string) {
	if !utf8.ValidString(s) {
		w.err = errJSONUTF8
	}
	w.b = append(w.b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
			continue
		}
		w.b = append(w.b, s[start:i]...)
		switch c {
		case '"', '\\':
			w.b = append(w.b, '\\', c)
		case '\n':
			w.b = append(w.b, '\\', 'n')
		case '\r':
			w.b = append(w.b, '\\', 'r')
		case '\t':
			w.b = append(w.b, '\\', 't')
		case '\b':
			w.b = append(w.b, '\\', 'b')
		case '\f':
			w.b = append(w.b, '\\', 'f')
		default:
			w.b = append(w.b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
		}
		start = i + 1
	}
	w.b = append(w.b, s[start:]...)
	w.b = append(w.b, '"')
}
