package querier

import (
	"bytes"
	"encoding/json"
	"io"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// WriteTraceJSONV1 writes Tempo's v1 trace JSON to w: OTLP JSON with the
// top key "batches" (IDs base64, as Tempo's gogo jsonpb writes them). It is
// streamed message by message (resource, scope, span), so what it holds
// beyond td is one span's encoding, however big the trace. The bytes are
// those of encoding/json over protojson's output: compact, with <, > and &
// escaped, the fields of a group in protojson's order and zero fields
// left out (TestWriteTraceJSONV1MatchesMarshal).
func WriteTraceJSONV1(w io.Writer, td *tracev1.TracesData) error {
	e := &jsonV1Encoder{w: w}
	e.str(`{"batches":[`)
	for i, rs := range td.GetResourceSpans() {
		if i > 0 {
			e.str(",")
		}
		e.resourceSpans(rs)
	}
	e.str("]}")
	return e.err
}

// MarshalTraceJSONV1 returns WriteTraceJSONV1's bytes.
func MarshalTraceJSONV1(td *tracev1.TracesData) ([]byte, error) {
	var b bytes.Buffer
	if err := WriteTraceJSONV1(&b, td); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// jsonV1Encoder writes JSON pieces to w, keeping the first error.
type jsonV1Encoder struct {
	w         io.Writer
	err       error
	compacted bytes.Buffer
	escaped   bytes.Buffer
}

func (e *jsonV1Encoder) str(s string) {
	if e.err == nil {
		_, e.err = io.WriteString(e.w, s)
	}
}

// msg writes m as protojson, compacted and HTML-escaped as encoding/json
// writes a json.RawMessage.
func (e *jsonV1Encoder) msg(m proto.Message) {
	if e.err != nil {
		return
	}
	b, err := protojson.Marshal(m)
	if err != nil {
		e.err = err
		return
	}
	e.compacted.Reset()
	if e.err = json.Compact(&e.compacted, b); e.err != nil {
		return
	}
	e.escaped.Reset()
	json.HTMLEscape(&e.escaped, e.compacted.Bytes())
	_, e.err = e.w.Write(e.escaped.Bytes())
}

// field writes `,"name":` (no comma before the first field of an object).
func (e *jsonV1Encoder) field(first *bool, name string) {
	if !*first {
		e.str(",")
	}
	*first = false
	e.str(`"` + name + `":`)
}

func (e *jsonV1Encoder) resourceSpans(rs *tracev1.ResourceSpans) {
	e.str("{")
	first := true
	if rs.GetResource() != nil {
		e.field(&first, "resource")
		e.msg(rs.Resource)
	}
	if len(rs.GetScopeSpans()) > 0 {
		e.field(&first, "scopeSpans")
		e.str("[")
		for i, ss := range rs.ScopeSpans {
			if i > 0 {
				e.str(",")
			}
			e.scopeSpans(ss)
		}
		e.str("]")
	}
	if rs.GetSchemaUrl() != "" {
		e.field(&first, "schemaUrl")
		e.jsonString(rs.SchemaUrl)
	}
	e.str("}")
}

func (e *jsonV1Encoder) scopeSpans(ss *tracev1.ScopeSpans) {
	e.str("{")
	first := true
	if ss.GetScope() != nil {
		e.field(&first, "scope")
		e.msg(ss.Scope)
	}
	if len(ss.GetSpans()) > 0 {
		e.field(&first, "spans")
		e.str("[")
		for i, sp := range ss.Spans {
			if i > 0 {
				e.str(",")
			}
			if sp == nil {
				sp = &tracev1.Span{} // protojson writes a nil element as {}
			}
			e.msg(sp)
		}
		e.str("]")
	}
	if ss.GetSchemaUrl() != "" {
		e.field(&first, "schemaUrl")
		e.jsonString(ss.SchemaUrl)
	}
	e.str("}")
}

// jsonString writes s as protojson writes a string field.
func (e *jsonV1Encoder) jsonString(s string) { e.msg(wrapperspb.String(s)) }
