package traceql

type intrinsic int

const (
	inName intrinsic = iota + 1
	inStatus
	inStatusMessage
	inKind
	inDuration
	inChildCount
	inSpanID
	inParentID
	inTraceID
	inRootName
	inRootService
	inTraceDuration
	inEventName
	inEventTimeSinceStart
	inLinkTraceID
	inLinkSpanID
	inInstrName
	inInstrVersion
)

// intrinsicNames maps every accepted spelling to its intrinsic.
var intrinsicNames = map[string]intrinsic{
	"name": inName, "span:name": inName,
	"status": inStatus, "span:status": inStatus,
	"statusMessage": inStatusMessage, "span:statusMessage": inStatusMessage,
	"kind": inKind, "span:kind": inKind,
	"duration": inDuration, "span:duration": inDuration,
	"childCount": inChildCount, "span:childCount": inChildCount,
	"span:id": inSpanID, "span:parentID": inParentID,
	"trace:id": inTraceID,
	"rootName": inRootName, "trace:rootName": inRootName,
	"rootServiceName": inRootService, "rootService": inRootService, "trace:rootService": inRootService,
	"traceDuration": inTraceDuration, "trace:duration": inTraceDuration,
	"event:name": inEventName, "event:timeSinceStart": inEventTimeSinceStart,
	"link:traceID": inLinkTraceID, "link:spanID": inLinkSpanID,
	"instrumentation:name": inInstrName, "instrumentation:version": inInstrVersion,
}

type intrinsicInfo struct {
	canon string // how String() prints it
	typ   vtype
	// cond is the Condition name for pushdown, "" if the intrinsic is not
	// part of the pushdown vocabulary.
	cond string
	// report: whether search results carry it as a span attribute (Tempo
	// leaves out name, duration, ids and trace-level intrinsics).
	report bool
	// key is the attribute key when reported.
	key   string
	event bool // evaluated per event of the span
	link  bool // evaluated per link of the span
}

var intrinsicInfos = map[intrinsic]intrinsicInfo{
	inName:                {canon: "name", typ: vString, cond: "name"},
	inStatus:              {canon: "status", typ: vStatus, cond: "status", report: true, key: "status"},
	inStatusMessage:       {canon: "statusMessage", typ: vString, cond: "statusMessage", report: true, key: "statusMessage"},
	inKind:                {canon: "kind", typ: vKind, cond: "kind", report: true, key: "kind"},
	inDuration:            {canon: "duration", typ: vDuration, cond: "duration"},
	inChildCount:          {canon: "childCount", typ: vInt, report: true, key: "childCount"},
	inSpanID:              {canon: "span:id", typ: vString},
	inParentID:            {canon: "span:parentID", typ: vString, report: true, key: "span:parentID"},
	inTraceID:             {canon: "trace:id", typ: vString},
	inRootName:            {canon: "rootName", typ: vString, cond: "rootName"},
	inRootService:         {canon: "rootServiceName", typ: vString, cond: "rootServiceName"},
	inTraceDuration:       {canon: "traceDuration", typ: vDuration, cond: "traceDuration"},
	inEventName:           {canon: "event:name", typ: vString, event: true},
	inEventTimeSinceStart: {canon: "event:timeSinceStart", typ: vDuration, event: true},
	inLinkTraceID:         {canon: "link:traceID", typ: vString, link: true},
	inLinkSpanID:          {canon: "link:spanID", typ: vString, link: true},
	inInstrName:           {canon: "instrumentation:name", typ: vString, report: true, key: "instrumentation:name"},
	inInstrVersion:        {canon: "instrumentation:version", typ: vString, report: true, key: "instrumentation:version"},
}
