package search

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/pkg/block"
)

func TestBlockRequest(t *testing.T) {
	q, err := ParseQuery(`{ resource.service.name = "a" && span.x > 3 && duration > 1s && status = error }`)
	require.NoError(t, err)
	req := BlockRequest(q, 100, 200)
	require.True(t, req.All)
	require.True(t, req.SameSpan, "one filter's && holds on one span")
	require.Len(t, req.Predicates, 4)
	require.Equal(t, int64(100), req.Start.Unix())
	require.Equal(t, int64(201), req.End.Unix(), "end second included")
	require.Contains(t, req.Predicates, block.Predicate{Scope: block.PredSpanIntrinsic, Key: "status", Op: block.PredEq, Value: block.PredValue{Type: block.ValStatus, Int: 2}})
	require.Contains(t, req.Predicates, block.Predicate{Scope: block.PredSpanIntrinsic, Key: "duration", Op: block.PredGt, Value: block.PredValue{Type: block.ValDuration, Int: 1e9}})

	// A condition with no block predicate: dropped under All ...
	q, err = ParseQuery(`{ span:id = "0000000000000001" && span.x = "y" }`)
	require.NoError(t, err)
	req = BlockRequest(q, 0, 0)
	require.True(t, req.Start.IsZero() && req.End.IsZero())
	require.Len(t, req.Predicates, 1)
	// ... and no pruning at all when any condition may hold.
	q, err = ParseQuery(`{ span:id = "0000000000000001" } || { span.x = "y" }`)
	require.NoError(t, err)
	require.Empty(t, BlockRequest(q, 0, 0).Predicates)

	// Two filters are two spans.
	q, err = ParseQuery(`{ span.x = 1 } && { span.y = 2 }`)
	require.NoError(t, err)
	req = BlockRequest(q, 0, 0)
	require.True(t, req.All)
	require.False(t, req.SameSpan)

	q, err = ParseQuery(`{}`)
	require.NoError(t, err)
	require.Empty(t, BlockRequest(q, 0, 0).Predicates)
}
