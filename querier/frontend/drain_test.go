package frontend_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// A worker draining a frontend (querier/worker, its frontend gone from
// DNS) closes its side of the stream with no job in flight. The frontend
// ends such a stream at once, also when idle, and a job it sent as the
// side closed goes to another worker without counting as a retry: the
// worker never ran it.
func TestFrontendEndsStreamOfClosedWorker(t *testing.T) {
	c := startFrontend(t, frontendConfig(), 1, 2)
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("idle", func(t *testing.T) {
		stream, err := rubatopb.NewFrontendClient(conn).Process(ctx)
		require.NoError(t, err)
		c.waitWorkers(t, 1)
		require.NoError(t, stream.CloseSend())
		_, err = stream.Recv()
		require.ErrorIs(t, err, io.EOF, "the frontend ends the stream cleanly")
		c.waitWorkers(t, 0)
	})

	t.Run("job sent as the side closed", func(t *testing.T) {
		stream, err := rubatopb.NewFrontendClient(conn).Process(ctx)
		require.NoError(t, err)
		c.waitWorkers(t, 1)
		type result struct {
			resp *rubatopb.SearchTagsV2Response
			err  error
		}
		res := make(chan result, 1)
		go func() {
			r, err := c.fe.SearchTagsV2(ctx, tenantID, &rubatopb.SearchTagsRequest{})
			res <- result{r, err}
		}()
		msg, err := stream.Recv()
		require.NoError(t, err)
		require.NotNil(t, msg.GetJob())
		require.NoError(t, stream.CloseSend()) // unanswered
		_, err = stream.Recv()
		require.ErrorIs(t, err, io.EOF)

		startWorker(t, c.store, c.addr, 1)
		r := <-res
		require.NoError(t, r.err)
		require.NotEmpty(t, r.resp.GetScopes())
		require.Zero(t, metric(t, c.reg, "rubato_query_frontend_retries_total"))
	})
}
