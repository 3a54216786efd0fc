package querier

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/tenant"
)

const (
	mimeProtobuf = "application/protobuf"
	mimeJSON     = "application/json"
)

// TraceFinder finds a trace by ID, as (*Querier).FindTraceByID does: the
// combined trace or nil, and a non-nil partial error when a source failed.
// The query-frontend implements it too.
type TraceFinder interface {
	FindTraceByID(ctx context.Context, tenantID string, id [16]byte, tr TimeRange) (*tracev1.TracesData, error)
}

// Handler serves Tempo's trace-by-ID HTTP API.
type Handler struct {
	f       TraceFinder
	logger  log.Logger
	tenants tenant.Resolver
}

// NewHandler returns the HTTP handlers of q.
func NewHandler(q *Querier, tenants tenant.Resolver) *Handler {
	logger := log.NewNopLogger()
	if q != nil {
		logger = q.logger
	}
	return NewTraceHandler(q, tenants, logger)
}

// NewTraceHandler returns the trace-by-ID HTTP handlers over any finder.
func NewTraceHandler(f TraceFinder, tenants tenant.Resolver, logger log.Logger) *Handler {
	return &Handler{f: f, logger: logger, tenants: tenants}
}

// Register mounts the handlers on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/traces/{id}", h.traceByIDV1)
	mux.HandleFunc("GET /api/v2/traces/{id}", h.traceByIDV2)
}

// ParseTraceID parses a hex trace ID of 1 to 32 digits, left-padding it to
// 16 bytes as Tempo does (64-bit IDs are accepted).
func ParseTraceID(s string) ([16]byte, error) {
	var id [16]byte
	if s == "" || len(s) > 32 {
		return id, fmt.Errorf("trace id %q: want 1 to 32 hex digits", s)
	}
	padded := strings.Repeat("0", 32-len(s)) + s
	if _, err := hex.Decode(id[:], []byte(padded)); err != nil {
		return id, fmt.Errorf("trace id %q: not hex", s)
	}
	return id, nil
}

// parseTimeRange reads optional start/end in Unix seconds.
func parseTimeRange(r *http.Request) (TimeRange, error) {
	var tr TimeRange
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"start", &tr.Start}, {"end", &tr.End}} {
		v := r.URL.Query().Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return tr, fmt.Errorf("%s %q: want unix seconds", p.name, v)
		}
		if n > 0 {
			*p.dst = time.Unix(n, 0)
		}
	}
	if !tr.Start.IsZero() && !tr.End.IsZero() && tr.End.Before(tr.Start) {
		return tr, fmt.Errorf("end before start")
	}
	// Spans may start before and end after the requested window; widen the
	// block filter by a small slack like Tempo's query_backend_after rules.
	return tr, nil
}

// lookup returns the trace (nil if not found) and a partial error when a
// source failed; ok is false once an error answer has been written. With
// `q`, the trace is reduced to the spans q matches and filtered says so.
func (h *Handler) lookup(w http.ResponseWriter, r *http.Request) (td *tracev1.TracesData, partial error, filtered string, ok bool) {
	tenantID, err := h.tenants.FromHTTP(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return nil, nil, "", false
	}
	id, err := ParseTraceID(r.PathValue("id"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, nil, "", false
	}
	tr, err := parseTimeRange(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, nil, "", false
	}
	filter, err := parseTraceFilter(r.URL.Query().Get("q"), r.URL.Query().Get("keep_hierarchy"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, nil, "", false
	}
	td, partial = h.f.FindTraceByID(r.Context(), tenantID, id, tr)
	if td == nil && errors.Is(partial, ErrTooManyRequests) {
		http.Error(w, partial.Error(), http.StatusTooManyRequests)
		return nil, nil, "", false
	}
	if partial != nil {
		level.Warn(h.logger).Log("msg", "trace lookup incomplete", "tenant", tenantID, "trace", hex.EncodeToString(id[:]), "err", partial)
	}
	if filter == nil || td == nil {
		return td, partial, "", true
	}
	out, kept, total, err := filter.apply(td)
	if err != nil {
		code := http.StatusInternalServerError
		var he *httpError
		if errors.As(err, &he) {
			code = he.code
		}
		http.Error(w, err.Error(), code)
		return nil, nil, "", false
	}
	if kept < total {
		filtered = fmt.Sprintf("trace filtered by q: %d of %d spans match %s", kept, total, filter.text)
	}
	return out, partial, filtered, true
}

func wantsProtobuf(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), mimeProtobuf)
}

// traceByIDV1 serves GET /api/traces/{id}: protobuf tempopb.Trace with
// Accept: application/protobuf, else JSON {"batches":[…]}; 404 if absent.
func (h *Handler) traceByIDV1(w http.ResponseWriter, r *http.Request) {
	td, partial, filtered, ok := h.lookup(w, r)
	if !ok {
		return
	}
	if td != nil && len(td.ResourceSpans) == 0 && filtered != "" && partial == nil {
		http.Error(w, "no span of the trace matches q", http.StatusNotFound)
		return
	}
	if td == nil {
		if partial != nil {
			// Not found, but a source that may hold it failed: a 404
			// would be a false answer.
			http.Error(w, "trace lookup failed: "+partial.Error(), http.StatusServiceUnavailable)
			return
		}
		http.Error(w, "trace not found", http.StatusNotFound)
		return
	}
	if msg := partialMessage(partial, filtered); msg != "" {
		// v1 has no partial status: say it in a header.
		w.Header().Set("X-Rubato-Partial", sanitizeHeader(msg))
	}
	if wantsProtobuf(r) {
		writeProto(w, &rubatopb.Trace{ResourceSpans: td.ResourceSpans})
		return
	}
	b, err := MarshalTraceJSONV1(td)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", mimeJSON)
	_, _ = w.Write(b)
}

// traceByIDV2 serves GET /api/v2/traces/{id}: TraceByIDResponse, whose
// field 1 is always present; not found is 200 with an empty trace.
func (h *Handler) traceByIDV2(w http.ResponseWriter, r *http.Request) {
	td, partial, filtered, ok := h.lookup(w, r)
	if !ok {
		return
	}
	resp := &rubatopb.TraceByIDResponse{Trace: &rubatopb.Trace{}}
	if td != nil {
		resp.Trace.ResourceSpans = td.ResourceSpans
	}
	if msg := partialMessage(partial, filtered); msg != "" {
		resp.Status = rubatopb.PartialStatus_PARTIAL
		resp.Message = msg
	}
	if wantsProtobuf(r) {
		writeProto(w, resp)
		return
	}
	b, err := protojson.Marshal(resp)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", mimeJSON)
	_, _ = w.Write(b)
}

// partialMessage says why an answer is partial: sources that failed, a
// `q` that filtered spans out, or both; "" when it is complete.
func partialMessage(partial error, filtered string) string {
	var parts []string
	if partial != nil {
		parts = append(parts, "some sources could not be read: "+partial.Error())
	}
	if filtered != "" {
		parts = append(parts, filtered)
	}
	return strings.Join(parts, "; ")
}

func sanitizeHeader(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = ' '
		}
	}
	if len(b) > 512 {
		b = b[:512]
	}
	return string(b)
}

func writeProto(w http.ResponseWriter, m proto.Message) {
	b, err := proto.Marshal(m)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", mimeProtobuf)
	_, _ = w.Write(b)
}

// MarshalTraceJSONV1 renders Tempo's v1 trace JSON: OTLP JSON with the top
// key "batches" (IDs base64, as Tempo's gogo jsonpb writes them).
func MarshalTraceJSONV1(td *tracev1.TracesData) ([]byte, error) {
	b, err := protojson.Marshal(td)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	batches := m["resourceSpans"]
	if batches == nil {
		batches = json.RawMessage("[]")
	}
	return json.Marshal(map[string]json.RawMessage{"batches": batches})
}
