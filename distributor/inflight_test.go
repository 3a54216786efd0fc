package distributor

import (
	"context"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/distributor/receiver"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/tenant"
)

// TestInflightBytesLimit: a request that would take the distributor over
// max_inflight_push_bytes is refused retryably (429 with RetryInfo), one
// that could never fit permanently (413); both count their spans once
// under inflight_bytes_limit and leave nothing in flight.
func TestInflightBytesLimit(t *testing.T) {
	body, err := proto.Marshal(exportRequest(3, 0))
	require.NoError(t, err)
	ctx := tenant.WithTenant(context.Background(), "t")

	d := newLimitOnlyDistributor(t, Config{MaxInflightPushBytes: int64(len(body)) + 10}, overrides.Limits{})
	d.inflight.Store(20) // another request in flight
	_, _, _, err = d.ConsumeRaw(ctx, body)
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	require.NotNil(t, retryInfo(t, err), "retryable: the Collector retries only with RetryInfo")
	require.Equal(t, http.StatusTooManyRequests, receiver.HTTPStatus(err))
	require.EqualValues(t, 20, d.inflight.Load(), "the refused request is no longer counted")
	var m dto.Metric
	require.NoError(t, d.discardedSpans.WithLabelValues("t", ReasonInflightBytes).Write(&m))
	require.Equal(t, 3.0, m.GetCounter().GetValue())

	d = newLimitOnlyDistributor(t, Config{MaxInflightPushBytes: int64(len(body)) - 1}, overrides.Limits{})
	_, _, _, err = d.ConsumeRaw(ctx, body)
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	require.Nil(t, retryInfo(t, err))
	require.Equal(t, http.StatusRequestEntityTooLarge, receiver.HTTPStatus(err))
	require.Zero(t, d.inflight.Load())
}
