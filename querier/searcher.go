package querier

import (
	"context"
	"errors"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// ErrInvalidQuery wraps every error caused by the request (bad TraceQL,
// unsupported feature, bad tag name): the API answers 400 / InvalidArgument
// with the error text.
var ErrInvalidQuery = errors.New("invalid query")

// ErrTooManyRequests wraps a refusal because a limit on queued work was
// reached (the query-frontend's max_outstanding_per_tenant): the API
// answers 429 / ResourceExhausted, and the client may retry later.
var ErrTooManyRequests = errors.New("too many outstanding requests")

// ErrNoIngesters: the ingester ring is empty (ingesters starting, replaying
// their WAL, or stopping), so traces not yet in the backend cannot be read.
// It is never answered as "nothing found", which would be a false 404 or an
// empty search: lookups answer PARTIAL (v2) or 503 (v1), searches 503 /
// Unavailable, and the client may retry.
var ErrNoIngesters = errors.New("no ingesters in the ring: recent traces cannot be read now (ingesters starting, replaying their WAL, or stopping)")

// ErrIngestersUnavailable: more ingesters failed a search or tag call than
// the ring's replication set tolerates (search.go ingesterSet), so recent
// traces may be missing: the call fails with 503 / Unavailable, never with
// a smaller answer, and the client may retry.
var ErrIngestersUnavailable = errors.New("too many ingesters unavailable: recent traces cannot all be read now")

// Searcher runs searches and tag lookups for one tenant. The API layer
// (SearchAPI, StreamingServer) serves it over HTTP and gRPC; *Querier
// implements it.
type Searcher interface {
	// Search runs req (Query is TraceQL; the API layer has already applied
	// defaults and limits, turned legacy tags/minDuration/maxDuration into
	// TraceQL, and Start/End are Unix seconds, 0 = open). progress, if
	// non-nil, is called with cumulative partial responses (traces so far,
	// metrics with completedJobs/totalJobs) while it runs. The final
	// response is returned.
	Search(ctx context.Context, tenant string, req *rubatopb.SearchRequest,
		progress func(*rubatopb.SearchResponse)) (*rubatopb.SearchResponse, error)
	SearchTagsV2(ctx context.Context, tenant string, req *rubatopb.SearchTagsRequest) (*rubatopb.SearchTagsV2Response, error)
	SearchTagValuesV2(ctx context.Context, tenant string, req *rubatopb.SearchTagValuesRequest) (*rubatopb.SearchTagValuesV2Response, error)
}
