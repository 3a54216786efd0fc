package minio_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/integration/minio"
)

func TestStart(t *testing.T) {
	srv := minio.Start(t)
	require.True(t, strings.HasPrefix(srv.Endpoint, "127.0.0.1:"), "loopback only: %s", srv.Endpoint)

	resp, err := http.Get(srv.URL() + "/minio/health/ready")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)

	ctx := context.Background()
	b1 := srv.NewBucket(t, "First")
	b2 := srv.NewBucket(t, "first")
	require.NotEqual(t, b1, b2)
	c := srv.Client(t)
	_, err = c.PutObject(ctx, b1, "k", strings.NewReader("v"), 1, miniogo.PutObjectOptions{})
	require.NoError(t, err)
	obj, err := c.GetObject(ctx, b1, "k", miniogo.GetObjectOptions{})
	require.NoError(t, err)
	data, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.NoError(t, obj.Close())
	require.Equal(t, "v", string(data))
}
