package traceqltest

import (
	"fmt"
	"math/rand"
	"strconv"
	"strings"
)

// Query shapes produced by Query.
const (
	ShapeMatchAll      = "match-all"
	ShapeFilter        = "filter"
	ShapeFilterAnd     = "filter-and"
	ShapeFilterOr      = "filter-or"
	ShapeFilterNot     = "filter-not"
	ShapeExists        = "exists"
	ShapeNotExists     = "not-exists"
	ShapeRegex         = "regex"
	ShapeArith         = "arithmetic"
	ShapeBoolAttr      = "bool-attribute"
	ShapeSpansetAnd    = "spanset-and"
	ShapeSpansetOr     = "spanset-or"
	ShapeStructural    = "structural" // suffixed with the operator
	ShapeNested        = "nested-spanset"
	ShapeAggregate     = "aggregate" // suffixed with the function
	ShapeBy            = "by"
	ShapeSelect        = "select"
	ShapeCoalesce      = "coalesce"
	ShapeWrapped       = "wrapped-pipeline"
	ShapePipelineFiler = "pipeline-filter"
	ShapeMultiValue    = "multi-value" // Grafana's builder: (f = a || f = b) && ...
)

// StructuralOps are the structural spanset operators.
var StructuralOps = []string{">", ">>", "<", "<<", "~", "!>", "!>>", "!<", "!<<", "!~", "&>", "&>>", "&<", "&<<", "&~"}

// Aggregates are the aggregate functions.
var Aggregates = []string{"count", "avg", "min", "max", "sum"}

// Shapes lists every shape name Query can return.
func Shapes() []string {
	s := []string{ShapeMatchAll, ShapeFilter, ShapeFilterAnd, ShapeFilterOr, ShapeFilterNot, ShapeExists,
		ShapeNotExists, ShapeRegex, ShapeArith, ShapeBoolAttr, ShapeSpansetAnd, ShapeSpansetOr, ShapeNested,
		ShapeBy, ShapeSelect, ShapeCoalesce, ShapeWrapped, ShapePipelineFiler, ShapeMultiValue}
	for _, op := range StructuralOps {
		s = append(s, ShapeStructural+" "+op)
	}
	for _, a := range Aggregates {
		s = append(s, ShapeAggregate+" "+a)
	}
	return s
}

func q(s string) string { return strconv.Quote(s) }

// Cond returns a random single comparison on a field from the shared vocabulary.
func Cond(r *rand.Rand) string {
	cmp := func(ops ...string) string { return pick(r, ops) }
	switch r.Intn(34) {
	case 0:
		return "resource.service.name " + cmp("=", "!=") + " " + q(pick(r, Services))
	case 1:
		return ".service.name = " + q(pick(r, Services))
	case 2:
		return "span.http.method " + cmp("=", "!=") + " " + q(pick(r, Methods))
	case 3:
		return "span.http.status_code " + cmp("=", "!=", ">=", "<", ">") + " " + strconv.FormatInt(pick(r, StatusCodes), 10)
	case 4:
		return ".http.status_code " + cmp("=", ">=") + " " + q("500")
	case 5:
		return "span.ratio " + cmp(">", "<=", "=") + " " + pick(r, []string{"0.5", "1", "1.25", "2.0"})
	case 6:
		return "span.cache.hit = " + pick(r, []string{"true", "false"})
	case 7:
		return "span.retries " + cmp(">", "=", "!=") + " " + strconv.Itoa(r.Intn(4))
	case 8:
		return "span.tags " + cmp("=", "!=") + " " + q(pick(r, append(Methods, Regions...)))
	case 9:
		return "span.codes " + cmp("=", "!=", ">") + " " + strconv.FormatInt(pick(r, StatusCodes), 10)
	case 10:
		return `span."weird key" = ` + q(pick(r, Methods))
	case 11:
		return ".shared = " + q(pick(r, []string{"from-span", "from-resource"}))
	case 12:
		return "resource.host.id " + cmp("=", "<", ">=") + " " + strconv.Itoa(r.Intn(4))
	case 13:
		return "resource.deployment.environment " + cmp("=", "!=") + " " + q(pick(r, Environments))
	case 14:
		return "instrumentation.language = " + q(pick(r, []string{"go", "java"}))
	case 15:
		return "event.exception.message = " + q(pick(r, Messages))
	case 16:
		return "event.level " + cmp(">", "=") + " " + strconv.Itoa(r.Intn(5))
	case 17:
		return "link.opentracing.ref_type = " + q(pick(r, []string{"child_of", "follows_from"}))
	case 18:
		return pick(r, []string{"name", "span:name"}) + " " + cmp("=", "!=") + " " + q(pick(r, SpanNames))
	case 19:
		return pick(r, []string{"status", "span:status"}) + " " + cmp("=", "!=") + " " + pick(r, []string{"ok", "error", "unset"})
	case 20:
		return pick(r, []string{"kind", "span:kind"}) + " " + cmp("=", "!=") + " " + pick(r, []string{"server", "client", "internal", "producer", "consumer", "unspecified"})
	case 21:
		return pick(r, []string{"duration", "span:duration"}) + " " + cmp(">", "<", ">=", "<=") + " " + pick(r, []string{"1ms", "50ms", "500us", "1.5s", "100ms"})
	case 22:
		return pick(r, []string{"statusMessage", "span:statusMessage"}) + " = " + q(pick(r, Messages))
	case 23:
		return pick(r, []string{"rootName", "trace:rootName"}) + " = " + q(pick(r, SpanNames))
	case 24:
		return pick(r, []string{"rootServiceName", "rootService", "trace:rootService"}) + " " + cmp("=", "!=") + " " + q(pick(r, Services))
	case 25:
		return pick(r, []string{"traceDuration", "trace:duration"}) + " " + cmp(">", "<") + " " + pick(r, []string{"500ms", "1s", "2s"})
	case 26:
		return "event:name = " + q(pick(r, EventNames))
	case 27:
		return "instrumentation:name = " + q(pick(r, ScopeNames))
	case 28:
		return "instrumentation:version " + cmp("=", "!=") + " " + q(pick(r, Versions))
	case 29:
		return pick(r, []string{"span:childCount", "childCount"}) + " " + cmp("=", ">", ">=") + " " + strconv.Itoa(r.Intn(3))
	case 30:
		return "resource.region = " + q(pick(r, Regions))
	case 31:
		return "span.db.system " + cmp("=", "!=") + " " + q(pick(r, DBSystems))
	case 32:
		return "event:timeSinceStart > " + pick(r, []string{"1ms", "3ms"})
	default:
		return "resource.service.namespace = " + q(pick(r, Namespaces))
	}
}

var attrsForExists = []string{
	"span.http.method", "span.db.system", ".shared", "resource.region", "span.cache.hit", "span.tags",
	"event.exception.message", "link.opentracing.ref_type", "instrumentation.language", "span.payload",
	`span."weird key"`, "resource.service.namespace",
}

func regexCond(r *rand.Rand) string {
	switch r.Intn(4) {
	case 0:
		return "resource.service.name " + pick(r, []string{"=~", "!~"}) + " " + q(pick(r, []string{"front.*", "cart|checkout", "db-.*", "c.*t"}))
	case 1:
		return "name " + pick(r, []string{"=~", "!~"}) + " " + q(pick(r, []string{"GET.*", ".*cart.*", "publish|consume", "GET"}))
	case 2:
		return "span.http.method =~ " + q(pick(r, []string{"GET|POST", "P.*", "(?i)get"}))
	}
	return "span.tags =~ " + q(pick(r, []string{"eu-.*", "GET|PUT"}))
}

func arithCond(r *rand.Rand) string {
	switch r.Intn(4) {
	case 0:
		return fmt.Sprintf("span.http.status_code * 2 > %d", 2*pick(r, StatusCodes)-1)
	case 1:
		return "duration + 1ms > " + pick(r, []string{"2ms", "100ms"})
	case 2:
		return fmt.Sprintf("span.retries + span.ratio >= %d", r.Intn(4))
	}
	return fmt.Sprintf("span.http.status_code %% 100 = %d", pick(r, []int{0, 1, 3, 4}))
}

// filterExpr returns a random field expression of the given shape.
func filterExpr(r *rand.Rand, shape string) string {
	switch shape {
	case ShapeFilterAnd:
		parts := []string{Cond(r), Cond(r)}
		if r.Intn(2) == 0 {
			parts = append(parts, Cond(r))
		}
		return strings.Join(parts, " && ")
	case ShapeFilterOr:
		switch r.Intn(3) {
		case 0:
			return Cond(r) + " || " + Cond(r)
		case 1:
			return "(" + Cond(r) + " || " + Cond(r) + ") && " + Cond(r)
		}
		return Cond(r) + " && (" + Cond(r) + " || " + Cond(r) + ")"
	case ShapeFilterNot:
		return "!(" + Cond(r) + ")"
	case ShapeExists:
		return pick(r, attrsForExists) + " != nil"
	case ShapeNotExists:
		return pick(r, attrsForExists) + " = nil"
	case ShapeRegex:
		return regexCond(r)
	case ShapeArith:
		return arithCond(r)
	case ShapeMultiValue:
		var f string
		var vals []string
		switch r.Intn(3) {
		case 0:
			f, vals = "resource.service.name", Services
		case 1:
			f, vals = "name", SpanNames
		default:
			f, vals = "span.http.method", Methods
		}
		alts := []string{f + " = " + q(pick(r, vals)), f + " = " + q(pick(r, vals))}
		if r.Intn(2) == 0 {
			alts = append(alts, f+" =~ "+q(pick(r, vals)[:1]+".*"))
		}
		s := "(" + strings.Join(alts, " || ") + ")"
		if r.Intn(2) == 0 {
			s += " && " + Cond(r)
		}
		return s
	case ShapeBoolAttr:
		if r.Intn(2) == 0 {
			return "span.cache.hit"
		}
		return ".cache.hit || " + Cond(r)
	}
	return Cond(r)
}

var filterShapes = []string{ShapeFilter, ShapeFilterAnd, ShapeFilterOr, ShapeFilterNot, ShapeExists, ShapeNotExists, ShapeRegex, ShapeArith, ShapeBoolAttr, ShapeMultiValue}

// Filter returns a random spanset filter `{ ... }`.
func Filter(r *rand.Rand) string {
	if r.Intn(12) == 0 {
		return "{ }"
	}
	return "{ " + filterExpr(r, pick(r, filterShapes)) + " }"
}

var aggFields = []string{"duration", "span.http.status_code", "span.ratio", "span.retries", "traceDuration"}
var byFields = []string{"resource.service.name", "span.http.method", "status", "kind", "name", ".shared"}
var selectFields = []string{"span.http.method", "resource.service.name", "status", "name", "span.cache.hit", "kind", "statusMessage", "instrumentation:name"}

func aggregate(r *rand.Rand, fn string) string {
	if fn == "count" {
		return "count() " + pick(r, []string{">", ">=", "=", "<", "!="}) + " " + strconv.Itoa(r.Intn(4))
	}
	f := pick(r, aggFields)
	var v string
	switch f {
	case "duration", "traceDuration":
		v = pick(r, []string{"1ms", "100ms", "1s"})
	case "span.http.status_code":
		v = strconv.FormatInt(pick(r, StatusCodes), 10)
	default:
		v = pick(r, []string{"0.5", "1", "2"})
	}
	return fn + "(" + f + ") " + pick(r, []string{">", ">=", "<", "<=", "=", "!="}) + " " + v
}

// Query returns a random query and its shape.
func Query(r *rand.Rand) (string, string) {
	shapes := Shapes()
	shape := shapes[r.Intn(len(shapes))]
	return QueryOfShape(r, shape), shape
}

// QueryOfShape returns a random query of one of the Shapes.
func QueryOfShape(r *rand.Rand, shape string) string {
	switch {
	case shape == ShapeMatchAll:
		return pick(r, []string{"{}", "{ }", "{ true }"})
	case shape == ShapeSpansetAnd:
		return Filter(r) + " && " + Filter(r)
	case shape == ShapeSpansetOr:
		return Filter(r) + " || " + Filter(r)
	case strings.HasPrefix(shape, ShapeStructural+" "):
		return Filter(r) + " " + strings.TrimPrefix(shape, ShapeStructural+" ") + " " + Filter(r)
	case shape == ShapeNested:
		switch r.Intn(3) {
		case 0:
			return "(" + Filter(r) + " && " + Filter(r) + ") " + pick(r, StructuralOps) + " " + Filter(r)
		case 1:
			return Filter(r) + " " + pick(r, StructuralOps) + " (" + Filter(r) + " || " + Filter(r) + ")"
		}
		return Filter(r) + " " + pick(r, StructuralOps) + " " + Filter(r) + " " + pick(r, StructuralOps) + " " + Filter(r)
	case strings.HasPrefix(shape, ShapeAggregate+" "):
		return Filter(r) + " | " + aggregate(r, strings.TrimPrefix(shape, ShapeAggregate+" "))
	case shape == ShapeBy:
		s := Filter(r) + " | by(" + pick(r, byFields) + ")"
		if r.Intn(2) == 0 {
			s += " | " + aggregate(r, pick(r, Aggregates))
		}
		return s
	case shape == ShapeSelect:
		n := 1 + r.Intn(3)
		fs := make([]string, n)
		for i := range fs {
			fs[i] = pick(r, selectFields)
		}
		return Filter(r) + " | select(" + strings.Join(fs, ", ") + ")"
	case shape == ShapeCoalesce:
		return Filter(r) + " | by(" + pick(r, byFields) + ") | coalesce()"
	case shape == ShapeWrapped:
		return "(" + Filter(r) + " | " + aggregate(r, "count") + ") " + pick(r, []string{"&&", "||"}) + " " + Filter(r)
	case shape == ShapePipelineFiler:
		return Filter(r) + " | " + Filter(r)
	}
	return "{ " + filterExpr(r, shape) + " }"
}
