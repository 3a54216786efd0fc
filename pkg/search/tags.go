package search

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/traceql"
)

// Tag scopes as the tags v2 API names them.
const (
	ScopeResource        = "resource"
	ScopeSpan            = "span"
	ScopeEvent           = "event"
	ScopeLink            = "link"
	ScopeInstrumentation = "instrumentation"
	ScopeIntrinsic       = "intrinsic"
)

// AttrScopes are the scopes holding attributes, in response order.
var AttrScopes = []string{ScopeResource, ScopeSpan, ScopeEvent, ScopeLink, ScopeInstrumentation}

// ValidTagScope reports whether s is a scope the tags API accepts ("" and
// "all" mean every scope).
func ValidTagScope(s string) bool {
	return s == "" || s == "all" || s == ScopeIntrinsic || slices.Contains(AttrScopes, s)
}

// TagNames accumulates tag names per scope, bounded by maxPerScope names
// (0 = unbounded) and maxBytes total (0 = unbounded).
type TagNames struct {
	maxPerScope int
	maxBytes    int
	bytes       int
	scopes      map[string]map[string]struct{}
}

// NewTagNames returns an empty set.
func NewTagNames(maxPerScope, maxBytes int) *TagNames {
	return &TagNames{maxPerScope: maxPerScope, maxBytes: maxBytes, scopes: map[string]map[string]struct{}{}}
}

// Add records name in scope; it reports false once the set is full.
func (t *TagNames) Add(scope, name string) bool {
	m := t.scopes[scope]
	if m == nil {
		m = map[string]struct{}{}
		t.scopes[scope] = m
	}
	if _, ok := m[name]; ok {
		return true
	}
	if (t.maxPerScope > 0 && len(m) >= t.maxPerScope) || (t.maxBytes > 0 && t.bytes+len(name) > t.maxBytes) {
		return false
	}
	m[name] = struct{}{}
	t.bytes += len(name)
	return true
}

// AddSpan records every attribute key of the span and its resource, scope,
// events and links.
func (t *TagNames) AddSpan(rs *tracev1.ResourceSpans, ss *tracev1.ScopeSpans, sp *tracev1.Span) {
	for _, kv := range rs.GetResource().GetAttributes() {
		t.Add(ScopeResource, kv.Key)
	}
	for _, kv := range ss.GetScope().GetAttributes() {
		t.Add(ScopeInstrumentation, kv.Key)
	}
	for _, kv := range sp.GetAttributes() {
		t.Add(ScopeSpan, kv.Key)
	}
	for _, ev := range sp.GetEvents() {
		for _, kv := range ev.Attributes {
			t.Add(ScopeEvent, kv.Key)
		}
	}
	for _, l := range sp.GetLinks() {
		for _, kv := range l.Attributes {
			t.Add(ScopeLink, kv.Key)
		}
	}
}

// AddTrace records the tag names of the spans of td matching q (every span
// when q is nil or matches all).
func (t *TagNames) AddTrace(q *traceql.Query, td *tracev1.TracesData) error {
	if q == nil || q.IsMatchAll() {
		for _, rs := range td.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					t.AddSpan(rs, ss, sp)
				}
			}
		}
		return nil
	}
	sets, err := q.Eval(td)
	if err != nil {
		return err
	}
	for _, set := range sets {
		for _, ms := range set.Spans {
			t.AddSpan(ms.Resource, ms.Scope, ms.Span)
		}
	}
	return nil
}

// Merge adds a response's names.
func (t *TagNames) Merge(r *rubatopb.SearchTagsV2Response) {
	for _, s := range r.GetScopes() {
		for _, n := range s.Tags {
			t.Add(s.Name, n)
		}
	}
}

// Response returns the names of scope ("" or "all" = every scope, the
// intrinsic scope listing traceql.Intrinsics()), sorted.
func (t *TagNames) Response(scope string) *rubatopb.SearchTagsV2Response {
	resp := &rubatopb.SearchTagsV2Response{Metrics: &rubatopb.MetadataMetrics{}}
	for _, s := range AttrScopes {
		if scope != "" && scope != "all" && scope != s {
			continue
		}
		names := make([]string, 0, len(t.scopes[s]))
		for n := range t.scopes[s] {
			names = append(names, n)
		}
		slices.Sort(names)
		resp.Scopes = append(resp.Scopes, &rubatopb.SearchTagsV2Scope{Name: s, Tags: names})
	}
	if scope == "" || scope == "all" || scope == ScopeIntrinsic {
		resp.Scopes = append(resp.Scopes, &rubatopb.SearchTagsV2Scope{Name: ScopeIntrinsic, Tags: traceql.Intrinsics()})
	}
	return resp
}

// Tag is a tag name of the tag-values API, resolved.
type Tag struct {
	// Scope is ScopeResource, ScopeSpan, ScopeEvent, ScopeLink,
	// ScopeInstrumentation, "" for unscoped (span, then resource), or
	// ScopeIntrinsic.
	Scope string
	Name  string
}

var intrinsicAliases = map[string]string{
	"name": "name", "span:name": "name",
	"status": "status", "span:status": "status",
	"kind": "kind", "span:kind": "kind",
	"statusMessage": "statusMessage", "span:statusMessage": "statusMessage",
	"rootName": "rootName", "trace:rootName": "rootName",
	"rootServiceName": "rootServiceName", "trace:rootService": "rootServiceName",
	"instrumentation:name": "instrumentation:name", "instrumentation:version": "instrumentation:version",
	"event:name": "event:name",
}

// ParseTag resolves a tag name: "resource.x", "span.x", "event.x", "link.x",
// "instrumentation.x", ".x" (unscoped), a string intrinsic, or a bare name
// (legacy v1, unscoped). Errors wrap ErrInvalid.
func ParseTag(name string) (Tag, error) {
	if c, ok := intrinsicAliases[name]; ok {
		return Tag{Scope: ScopeIntrinsic, Name: c}, nil
	}
	for _, s := range AttrScopes {
		if rest, ok := strings.CutPrefix(name, s+"."); ok && rest != "" {
			return Tag{Scope: s, Name: rest}, nil
		}
	}
	if rest, ok := strings.CutPrefix(name, "."); ok && rest != "" {
		return Tag{Name: rest}, nil
	}
	if name == "" || strings.ContainsAny(name, "{}\"") || strings.Contains(name, ":") {
		return Tag{}, fmt.Errorf("%w: tag name %q is not an attribute (resource., span., event., link., instrumentation., .) or a supported intrinsic", ErrInvalid, name)
	}
	return Tag{Name: name}, nil
}

type typedValue struct{ Type, Value string }

// TagValues accumulates distinct typed values, bounded by maxValues
// (0 = unbounded) and maxBytes (0 = unbounded).
type TagValues struct {
	maxValues, maxBytes int
	bytes               int
	set                 map[typedValue]struct{}
	full                bool
}

// NewTagValues returns an empty set.
func NewTagValues(maxValues, maxBytes int) *TagValues {
	return &TagValues{maxValues: maxValues, maxBytes: maxBytes, set: map[typedValue]struct{}{}}
}

// Full reports whether a value was refused for lack of room.
func (v *TagValues) Full() bool { return v.full }

// Bytes is the length of the values held.
func (v *TagValues) Bytes() int { return v.bytes }

// AddAll adds every value of o; false once full.
func (v *TagValues) AddAll(o *TagValues) bool {
	for k := range o.set {
		if !v.Add(k.Type, k.Value) {
			return false
		}
	}
	return true
}

// Each calls fn with every value held, in no order.
func (v *TagValues) Each(fn func(typ, val string)) {
	for k := range v.set {
		fn(k.Type, k.Value)
	}
}

// Add records a value; false once full.
func (v *TagValues) Add(typ, val string) bool {
	k := typedValue{Type: typ, Value: val}
	if _, ok := v.set[k]; ok {
		return true
	}
	if (v.maxValues > 0 && len(v.set) >= v.maxValues) || (v.maxBytes > 0 && v.bytes+len(val) > v.maxBytes) {
		v.full = true
		return false
	}
	v.set[k] = struct{}{}
	v.bytes += len(val)
	return true
}

// AddAnyValue records an OTLP scalar value; arrays, maps and bytes are not
// listed (as block.Reader.TagValues, so every stage answers alike).
func (v *TagValues) AddAnyValue(av *commonv1.AnyValue) {
	switch x := av.GetValue().(type) {
	case *commonv1.AnyValue_StringValue:
		v.Add("string", x.StringValue)
	case *commonv1.AnyValue_IntValue:
		v.Add("int", strconv.FormatInt(x.IntValue, 10))
	case *commonv1.AnyValue_DoubleValue:
		v.Add("float", strconv.FormatFloat(x.DoubleValue, 'g', -1, 64))
	case *commonv1.AnyValue_BoolValue:
		v.Add("bool", strconv.FormatBool(x.BoolValue))
	}
}

// AddSpan records the tag's values on one span (with its resource, scope,
// events and links).
func (v *TagValues) AddSpan(tag Tag, rs *tracev1.ResourceSpans, ss *tracev1.ScopeSpans, sp *tracev1.Span) {
	find := func(kvs []*commonv1.KeyValue) bool {
		for _, kv := range kvs {
			if kv.Key == tag.Name {
				v.AddAnyValue(kv.Value)
				return true
			}
		}
		return false
	}
	switch tag.Scope {
	case ScopeResource:
		find(rs.GetResource().GetAttributes())
	case ScopeSpan:
		find(sp.GetAttributes())
	case ScopeInstrumentation:
		find(ss.GetScope().GetAttributes())
	case ScopeEvent:
		for _, ev := range sp.GetEvents() {
			find(ev.Attributes)
		}
	case ScopeLink:
		for _, l := range sp.GetLinks() {
			find(l.Attributes)
		}
	case "":
		// Autocompletion of `.x` offers span and resource values alike.
		find(sp.GetAttributes())
		find(rs.GetResource().GetAttributes())
	case ScopeIntrinsic:
		switch tag.Name {
		case "name":
			v.Add("string", sp.Name)
		case "status":
			v.Add("keyword", statusKeyword(sp.GetStatus().GetCode()))
		case "kind":
			v.Add("keyword", kindKeyword(sp.Kind))
		case "statusMessage":
			v.Add("string", sp.GetStatus().GetMessage())
		case "instrumentation:name":
			v.Add("string", ss.GetScope().GetName())
		case "instrumentation:version":
			v.Add("string", ss.GetScope().GetVersion())
		case "event:name":
			for _, ev := range sp.GetEvents() {
				v.Add("string", ev.Name)
			}
		}
	}
}

// AddTrace records the tag's values over the spans of td matching q (every
// span when q is nil or matches all). rootName and rootServiceName take the
// trace's root span.
func (v *TagValues) AddTrace(tag Tag, q *traceql.Query, td *tracev1.TracesData) error {
	if tag.Scope == ScopeIntrinsic && (tag.Name == "rootName" || tag.Name == "rootServiceName") {
		if q != nil && !q.IsMatchAll() {
			sets, err := q.Eval(td)
			if err != nil || len(sets) == 0 {
				return err
			}
		}
		for _, rs := range td.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					if len(sp.ParentSpanId) == 0 {
						if tag.Name == "rootName" {
							v.Add("string", sp.Name)
						} else {
							v.Add("string", serviceName(rs))
						}
						return nil
					}
				}
			}
		}
		return nil
	}
	if q == nil || q.IsMatchAll() {
		for _, rs := range td.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					v.AddSpan(tag, rs, ss, sp)
				}
			}
		}
		return nil
	}
	sets, err := q.Eval(td)
	if err != nil {
		return err
	}
	for _, set := range sets {
		for _, ms := range set.Spans {
			v.AddSpan(tag, ms.Resource, ms.Scope, ms.Span)
		}
	}
	return nil
}

// Merge adds a response's values.
func (v *TagValues) Merge(r *rubatopb.SearchTagValuesV2Response) {
	for _, tv := range r.GetTagValues() {
		v.Add(tv.Type, tv.Value)
	}
}

// Response returns the values sorted by type then value.
func (v *TagValues) Response() *rubatopb.SearchTagValuesV2Response {
	out := make([]*rubatopb.TagValue, 0, len(v.set))
	for k := range v.set {
		out = append(out, &rubatopb.TagValue{Type: k.Type, Value: k.Value})
	}
	slices.SortFunc(out, func(a, b *rubatopb.TagValue) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	return &rubatopb.SearchTagValuesV2Response{TagValues: out, Metrics: &rubatopb.MetadataMetrics{}}
}

func statusKeyword(c tracev1.Status_StatusCode) string {
	switch c {
	case tracev1.Status_STATUS_CODE_OK:
		return "ok"
	case tracev1.Status_STATUS_CODE_ERROR:
		return "error"
	}
	return "unset"
}

func kindKeyword(k tracev1.Span_SpanKind) string {
	switch k {
	case tracev1.Span_SPAN_KIND_INTERNAL:
		return "internal"
	case tracev1.Span_SPAN_KIND_SERVER:
		return "server"
	case tracev1.Span_SPAN_KIND_CLIENT:
		return "client"
	case tracev1.Span_SPAN_KIND_PRODUCER:
		return "producer"
	case tracev1.Span_SPAN_KIND_CONSUMER:
		return "consumer"
	}
	return "unspecified"
}
