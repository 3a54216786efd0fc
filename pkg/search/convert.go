package search

import (
	"time"

	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/traceql"
)

// BlockRequest turns a query's conditions and a time range (Unix seconds,
// 0 = open) into a block search request. It stays conservative: a
// condition that has no block predicate is left out when all conditions
// must hold (fewer constraints, more candidates), and disables pruning
// entirely when any one may hold.
func BlockRequest(q *traceql.Query, start, end uint32) block.SearchRequest {
	req := block.SearchRequest{}
	if start != 0 {
		req.Start = time.Unix(int64(start), 0)
	}
	if end != 0 {
		req.End = time.Unix(int64(end)+1, 0) // end is inclusive to the second
	}
	if q == nil {
		return req
	}
	conds := q.Conditions()
	req.All = conds.All
	req.SameSpan = conds.All && conds.SameSpan
	for _, c := range conds.Conds {
		p, ok := Predicate(c)
		if !ok {
			if !conds.All {
				req.Predicates = nil
				return req
			}
			continue // dropping a condition of one span keeps the rest on it
		}
		req.Predicates = append(req.Predicates, p)
	}
	if len(req.Predicates) == 0 {
		req.All = false
	}
	return req
}

// Predicate converts one condition; ok is false when the block has no
// equivalent (intrinsics such as trace:id, event:name, nil literals).
func Predicate(c traceql.Condition) (block.Predicate, bool) {
	var p block.Predicate
	switch c.Scope {
	case traceql.ScopeUnscoped:
		p.Scope = block.PredUnscoped
	case traceql.ScopeResource:
		p.Scope = block.PredResource
	case traceql.ScopeSpan:
		p.Scope = block.PredSpan
	case traceql.ScopeEvent:
		p.Scope = block.PredEvent
	case traceql.ScopeLink:
		p.Scope = block.PredLink
	case traceql.ScopeInstrumentation:
		p.Scope = block.PredInstrumentation
	case traceql.ScopeIntrinsic:
		switch c.Name {
		case block.IntrinsicName, block.IntrinsicStatus, block.IntrinsicKind, block.IntrinsicDuration, block.IntrinsicStatusMessage:
			p.Scope = block.PredSpanIntrinsic
		case block.IntrinsicRootName, block.IntrinsicRootServiceName, block.IntrinsicTraceDuration:
			p.Scope = block.PredTraceIntrinsic
		default:
			return p, false
		}
	default:
		return p, false
	}
	p.Key = c.Name
	switch c.Op {
	case traceql.OpEq:
		p.Op = block.PredEq
	case traceql.OpNe:
		p.Op = block.PredNe
	case traceql.OpLt:
		p.Op = block.PredLt
	case traceql.OpLe:
		p.Op = block.PredLe
	case traceql.OpGt:
		p.Op = block.PredGt
	case traceql.OpGe:
		p.Op = block.PredGe
	case traceql.OpRegex:
		p.Op = block.PredRegex
	case traceql.OpNotRegex:
		p.Op = block.PredNotRegex
	case traceql.OpExists:
		p.Op = block.PredExists
		return p, true
	default:
		return p, false
	}
	v := c.Value
	switch v.Type {
	case traceql.TypeString:
		p.Value = block.PredValue{Type: block.ValString, Str: v.S}
	case traceql.TypeInt:
		p.Value = block.PredValue{Type: block.ValInt, Int: v.I}
	case traceql.TypeFloat:
		p.Value = block.PredValue{Type: block.ValFloat, Float: v.F}
	case traceql.TypeBool:
		p.Value = block.PredValue{Type: block.ValBool, Bool: v.B}
	case traceql.TypeDuration:
		p.Value = block.PredValue{Type: block.ValDuration, Int: int64(v.D)}
	case traceql.TypeStatus:
		p.Value = block.PredValue{Type: block.ValStatus, Int: int64(v.Status)}
	case traceql.TypeKind:
		p.Value = block.PredValue{Type: block.ValKind, Int: int64(v.Kind)}
	default:
		return p, false
	}
	return p, true
}
