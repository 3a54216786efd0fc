package block

// The Parquet schema of data.parquet, format v1, as Go structs. parquet-go
// derives the schema from the struct tags; FORMAT.md draws the tree. Field
// names are column names: renaming one is a format change.
//
// Conventions that make the storage lossless (see convert.go):
//   - A value stored in a dedicated column (ServiceName, HTTPMethod, ...) is
//     removed from Attrs; its <Name>Pos column holds its 1-based index in the
//     original attribute list (0 = absent), so it returns to that position.
//   - Only the first attribute with a dedicated key and the dedicated type
//     (string, or int for status codes) is moved; others stay in Attrs.
//   - Present flags distinguish a missing message (nil Resource, Scope or
//     Status) from an empty one, as protobuf does.
//   - Times below the trace level are stored as offsets that wrap modulo
//     2^64, so any uint64 pair round-trips.

// traceRow is one row: one trace.
type traceRow struct {
	// TraceID is the sort key: rows are in ascending TraceID order.
	TraceID           [16]byte `parquet:"TraceID"`
	StartTimeUnixNano uint64   `parquet:"StartTimeUnixNano,delta"` // min span start (derived)
	EndTimeUnixNano   uint64   `parquet:"EndTimeUnixNano,delta"`   // max span end (derived)
	DurationNano      uint64   `parquet:"DurationNano,delta"`      // end - start, 0 if negative (derived)
	RootServiceName   string   `parquet:"RootServiceName,dict"`    // service of the first span without parent (derived)
	RootSpanName      string   `parquet:"RootSpanName,dict"`       // name of that span (derived)
	SpanCount         int32    `parquet:"SpanCount,delta"`         // spans in the trace (derived)

	ResourceSpans []resourceSpansRow `parquet:"rs"`

	// spanOrd is writer scratch space: span ID -> ordinal in the trace.
	spanOrd map[[8]byte]int32 `parquet:"-"`
}

type resourceSpansRow struct {
	Resource   resourceRow     `parquet:"Resource"`
	SchemaURL  string          `parquet:"SchemaURL,dict"`
	ScopeSpans []scopeSpansRow `parquet:"ss"`
}

type resourceRow struct {
	Present                bool   `parquet:"Present"`
	DroppedAttributesCount uint32 `parquet:"DroppedAttributesCount,dict"`

	ServiceName         string `parquet:"ServiceName,dict"`
	ServiceNamePos      int32  `parquet:"ServiceNamePos,dict"`
	K8sClusterName      string `parquet:"K8sClusterName,dict"`
	K8sClusterNamePos   int32  `parquet:"K8sClusterNamePos,dict"`
	K8sNamespaceName    string `parquet:"K8sNamespaceName,dict"`
	K8sNamespaceNamePos int32  `parquet:"K8sNamespaceNamePos,dict"`
	K8sPodName          string `parquet:"K8sPodName,dict"`
	K8sPodNamePos       int32  `parquet:"K8sPodNamePos,dict"`
	K8sContainerName    string `parquet:"K8sContainerName,dict"`
	K8sContainerNamePos int32  `parquet:"K8sContainerNamePos,dict"`

	Attrs []attrRow `parquet:"Attrs"`
}

type scopeSpansRow struct {
	Scope     scopeRow  `parquet:"Scope"`
	SchemaURL string    `parquet:"SchemaURL,dict"`
	Spans     []spanRow `parquet:"Spans"`
}

type scopeRow struct {
	Present                bool      `parquet:"Present"`
	Name                   string    `parquet:"Name,dict"`
	Version                string    `parquet:"Version,dict"`
	DroppedAttributesCount uint32    `parquet:"DroppedAttributesCount,dict"`
	Attrs                  []attrRow `parquet:"Attrs"`
}

type spanRow struct {
	SpanID []byte `parquet:"SpanID"`
	// ParentIdx is the 1-based ordinal, in row order over the whole trace,
	// of the span whose SpanID is this span's 8-byte parent_span_id; then
	// ParentSpanID is empty. 0 means ParentSpanID holds the parent as is.
	ParentIdx    int32  `parquet:"ParentIdx,delta"`
	ParentSpanID []byte `parquet:"ParentSpanID"`
	// OtherTraceID is empty when the span's trace_id equals the row's
	// TraceID; otherwise 0x01 followed by the span's trace_id.
	OtherTraceID []byte `parquet:"OtherTraceID"`
	TraceState   string `parquet:"TraceState,dict"`
	Name         string `parquet:"Name,dict"`
	Kind         int32  `parquet:"Kind,dict"`
	Flags        uint32 `parquet:"Flags,dict"`
	// StartOffsetNano is start - the trace's StartTimeUnixNano, modulo 2^64.
	StartOffsetNano uint64 `parquet:"StartOffsetNano,delta"`
	DurationNano    uint64 `parquet:"DurationNano,delta"` // end - start modulo 2^64

	StatusPresent bool   `parquet:"StatusPresent"`
	StatusCode    int32  `parquet:"StatusCode,dict"`
	StatusMessage string `parquet:"StatusMessage,optional,dict"`

	DroppedAttributesCount uint32 `parquet:"DroppedAttributesCount,dict"`
	DroppedEventsCount     uint32 `parquet:"DroppedEventsCount,dict"`
	DroppedLinksCount      uint32 `parquet:"DroppedLinksCount,dict"`

	HTTPMethod                string `parquet:"HttpMethod,dict"`
	HTTPMethodPos             int32  `parquet:"HttpMethodPos,dict"`
	HTTPRequestMethod         string `parquet:"HttpRequestMethod,dict"`
	HTTPRequestMethodPos      int32  `parquet:"HttpRequestMethodPos,dict"`
	HTTPURL                   string `parquet:"HttpUrl"`
	HTTPURLPos                int32  `parquet:"HttpUrlPos,dict"`
	URLFull                   string `parquet:"UrlFull"`
	URLFullPos                int32  `parquet:"UrlFullPos,dict"`
	HTTPStatusCode            int64  `parquet:"HttpStatusCode,dict"`
	HTTPStatusCodePos         int32  `parquet:"HttpStatusCodePos,dict"`
	HTTPResponseStatusCode    int64  `parquet:"HttpResponseStatusCode,dict"`
	HTTPResponseStatusCodePos int32  `parquet:"HttpResponseStatusCodePos,dict"`

	Attrs  []attrRow  `parquet:"Attrs"`
	Events []eventRow `parquet:"Events"`
	Links  []linkRow  `parquet:"Links"`
}

type eventRow struct {
	TimeSinceStartNano     uint64    `parquet:"TimeSinceStartNano,delta"` // time - span start modulo 2^64
	Name                   string    `parquet:"Name,dict"`
	DroppedAttributesCount uint32    `parquet:"DroppedAttributesCount,dict"`
	Attrs                  []attrRow `parquet:"Attrs"`
}

type linkRow struct {
	TraceID                []byte    `parquet:"TraceID"`
	SpanID                 []byte    `parquet:"SpanID"`
	TraceState             string    `parquet:"TraceState,dict"`
	Flags                  uint32    `parquet:"Flags,dict"`
	DroppedAttributesCount uint32    `parquet:"DroppedAttributesCount,dict"`
	Attrs                  []attrRow `parquet:"Attrs"`
}

// attrRow is one OTLP KeyValue. Kind says which value column holds the
// value; the others are null. Zero values are stored as null too (parquet-go
// writes zero optional values as null), and Kind restores them.
type attrRow struct {
	Key    string  `parquet:"Key,dict"`
	Kind   int32   `parquet:"Kind,dict"`
	Str    string  `parquet:"Str,optional,dict"`
	Int    int64   `parquet:"Int,optional"`    // int_value; bool_value as 0/1
	Double float64 `parquet:"Double,optional"` // double_value
	Bytes  []byte  `parquet:"Bytes,optional"`  // bytes_value, or a proto-encoded AnyValue
}

// Attribute kinds (attrRow.Kind).
const (
	kindNil    = 0 // KeyValue.value absent
	kindEmpty  = 1 // AnyValue with no value set
	kindString = 2
	kindBool   = 3
	kindInt    = 4
	kindDouble = 5
	kindBytes  = 6
	kindProto  = 7 // array_value or kvlist_value: Bytes holds the proto-encoded AnyValue
)

// dedicated describes one dedicated attribute column of row type R.
type dedicated[R any] struct {
	key   string
	isInt bool
	str   func(*R) *string
	num   func(*R) *int64
	pos   func(*R) *int32
}

var resourceDedicated = []dedicated[resourceRow]{
	{key: "service.name", str: func(r *resourceRow) *string { return &r.ServiceName }, pos: func(r *resourceRow) *int32 { return &r.ServiceNamePos }},
	{key: "k8s.cluster.name", str: func(r *resourceRow) *string { return &r.K8sClusterName }, pos: func(r *resourceRow) *int32 { return &r.K8sClusterNamePos }},
	{key: "k8s.namespace.name", str: func(r *resourceRow) *string { return &r.K8sNamespaceName }, pos: func(r *resourceRow) *int32 { return &r.K8sNamespaceNamePos }},
	{key: "k8s.pod.name", str: func(r *resourceRow) *string { return &r.K8sPodName }, pos: func(r *resourceRow) *int32 { return &r.K8sPodNamePos }},
	{key: "k8s.container.name", str: func(r *resourceRow) *string { return &r.K8sContainerName }, pos: func(r *resourceRow) *int32 { return &r.K8sContainerNamePos }},
}

var spanDedicated = []dedicated[spanRow]{
	{key: "http.method", str: func(r *spanRow) *string { return &r.HTTPMethod }, pos: func(r *spanRow) *int32 { return &r.HTTPMethodPos }},
	{key: "http.request.method", str: func(r *spanRow) *string { return &r.HTTPRequestMethod }, pos: func(r *spanRow) *int32 { return &r.HTTPRequestMethodPos }},
	{key: "http.url", str: func(r *spanRow) *string { return &r.HTTPURL }, pos: func(r *spanRow) *int32 { return &r.HTTPURLPos }},
	{key: "url.full", str: func(r *spanRow) *string { return &r.URLFull }, pos: func(r *spanRow) *int32 { return &r.URLFullPos }},
	{key: "http.status_code", isInt: true, num: func(r *spanRow) *int64 { return &r.HTTPStatusCode }, pos: func(r *spanRow) *int32 { return &r.HTTPStatusCodePos }},
	{key: "http.response.status_code", isInt: true, num: func(r *spanRow) *int64 { return &r.HTTPResponseStatusCode }, pos: func(r *spanRow) *int32 { return &r.HTTPResponseStatusCodePos }},
}
