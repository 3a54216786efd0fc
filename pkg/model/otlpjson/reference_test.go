package otlpjson

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// referenceDecode is the decoder Decode must agree with: the input must be
// valid UTF-8 JSON (RFC 8259), its trace and span IDs are rewritten from
// OTLP's hex to protojson's base64 (only where OTLP puts them: spans and
// links), and protojson decodes the result, ignoring unknown fields as the
// OTLP specification requires of receivers. It is slow and allocates; it
// exists to check Decode.
func referenceDecode(data []byte) (*coltracepb.ExportTraceServiceRequest, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("reference: not UTF-8")
	}
	if !json.Valid(data) {
		return nil, errors.New("reference: not JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out bytes.Buffer
	if err := rewrite(dec, &out, ctxTop); err != nil {
		return nil, err
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(out.Bytes(), req); err != nil {
		return nil, err
	}
	return req, nil
}

// Where a JSON value sits in an ExportTraceServiceRequest, as far as the
// ID rewrite needs to know.
type refCtx int

const (
	ctxOther refCtx = iota
	ctxTop
	ctxResourceSpans
	ctxScopeSpans
	ctxSpan
	ctxLink
)

// child tells the context of the value under key in an object of context c.
func (c refCtx) child(key string) refCtx {
	switch {
	case c == ctxTop && (key == "resourceSpans" || key == "resource_spans"):
		return ctxResourceSpans
	case c == ctxResourceSpans && (key == "scopeSpans" || key == "scope_spans"):
		return ctxScopeSpans
	case c == ctxScopeSpans && key == "spans":
		return ctxSpan
	case c == ctxSpan && key == "links":
		return ctxLink
	}
	return ctxOther
}

// idLen returns the length in bytes of the ID field key in an object of
// context c, or 0 if key is no ID field there.
func idLen(c refCtx, key string) int {
	switch {
	case (key == "traceId" || key == "trace_id") && (c == ctxSpan || c == ctxLink):
		return 16
	case (key == "spanId" || key == "span_id") && (c == ctxSpan || c == ctxLink):
		return 8
	case (key == "parentSpanId" || key == "parent_span_id") && c == ctxSpan:
		return 8
	}
	return 0
}

// rewrite copies one JSON value from dec to out token by token (so
// duplicate keys and number spellings reach protojson as written), turning
// hex IDs into base64. Arrays pass their context to their elements.
func rewrite(dec *json.Decoder, out *bytes.Buffer, c refCtx) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			out.WriteByte('{')
			for i := 0; dec.More(); i++ {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				key := kt.(string)
				if i > 0 {
					out.WriteByte(',')
				}
				writeJSONString(out, key)
				out.WriteByte(':')
				if n := idLen(c, key); n > 0 {
					if err := rewriteID(dec, out, n); err != nil {
						return err
					}
					continue
				}
				if err := rewrite(dec, out, c.child(key)); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return err
			}
			out.WriteByte('}')
		case '[':
			out.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					out.WriteByte(',')
				}
				if err := rewrite(dec, out, c); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return err
			}
			out.WriteByte(']')
		}
	case string:
		writeJSONString(out, v)
	case json.Number:
		out.WriteString(v.String())
	case bool:
		fmt.Fprint(out, v)
	case nil:
		out.WriteString("null")
	}
	return nil
}

// rewriteID turns a hex ID string of n bytes into base64; "" and null are
// absent, and anything else is refused as OTLP/JSON refuses it.
func rewriteID(dec *json.Decoder, out *bytes.Buffer, n int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch v := tok.(type) {
	case nil:
		out.WriteString("null")
		return nil
	case string:
		b, err := hex.DecodeString(v)
		if err != nil {
			return fmt.Errorf("reference: id %q is not hex", v)
		}
		if len(b) != 0 && len(b) != n {
			return fmt.Errorf("reference: id %q has %d bytes", v, len(b))
		}
		writeJSONString(out, base64.StdEncoding.EncodeToString(b))
		return nil
	case json.Delim:
		return fmt.Errorf("reference: id is %v", v)
	}
	return fmt.Errorf("reference: id is %T", tok)
}

func writeJSONString(out *bytes.Buffer, s string) {
	b, _ := json.Marshal(s) // a string always marshals
	out.Write(b)
}
