package search

import (
	"context"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/traceql"
)

// Tag calls over one block: attribute names and values come from the
// block's tag index (pkg/block tags.go) without decoding a trace; only
// intrinsics, which have no index, and filtered calls read the traces.

// tagScopeNames maps the block's tag-index scopes to the API's.
var tagScopeNames = map[block.TagScope]string{
	block.TagResource: ScopeResource, block.TagSpan: ScopeSpan, block.TagEvent: ScopeEvent,
	block.TagLink: ScopeLink, block.TagInstrumentation: ScopeInstrumentation,
}

// BlockTagNames adds every attribute name of r's tag index to names.
func BlockTagNames(ctx context.Context, r *block.Reader, names *TagNames) error {
	return r.TagNames(ctx, func(sc block.TagScope, name string) {
		if s, ok := tagScopeNames[sc]; ok {
			names.Add(s, name)
		}
	})
}

// BlockTagValues adds every value of tag in r to vals, with no filter: an
// attribute's from the tag index (both span and resource for an unscoped
// tag), an intrinsic's by reading every trace.
func BlockTagValues(ctx context.Context, r *block.Reader, tag Tag, vals *TagValues) error {
	if tag.Scope == ScopeIntrinsic {
		return EachTrace(ctx, r, nil, 0, 0, func(td *tracev1.TracesData) error { return vals.AddTrace(tag, nil, td) })
	}
	var scopes []block.TagScope
	if tag.Scope == "" {
		scopes = []block.TagScope{block.TagSpan, block.TagResource}
	}
	for sc, name := range tagScopeNames {
		if name == tag.Scope {
			scopes = append(scopes, sc)
		}
	}
	for _, sc := range scopes {
		if err := r.TagValues(ctx, sc, tag.Name, func(v block.TagValue) bool { return vals.Add(v.Type, v.Value) }); err != nil {
			return err
		}
	}
	return nil
}

// EachTrace calls fn with every trace of r that may match pq (nil: all)
// and overlaps [start, end] (Unix seconds, 0 = open), decoded; an error
// from fn stops and is returned.
func EachTrace(ctx context.Context, r *block.Reader, pq *traceql.Query, start, end uint32, fn func(*tracev1.TracesData) error) error {
	var fnErr error
	_, err := Candidates(ctx, r, Request{Query: pq, Start: start, End: end}, func(_ []byte, td *tracev1.TracesData) bool {
		if start != 0 || end != 0 {
			s, e := TraceBounds(td)
			if !InRange(s, e, start, end) {
				return true
			}
		}
		fnErr = fn(td)
		return fnErr == nil
	})
	if err == nil {
		err = fnErr
	}
	return err
}
