package integration

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func post(t testing.TB, url, contentType string, body []byte, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp, b.String()
}

func TestBadInput(t *testing.T) {
	s := startServer(t, options{Multitenancy: true})
	url := "http://" + s.otlpHTTP() + "/v1/traces"
	good, ids := makeRequest(1, 2)
	goodBytes, err := proto.Marshal(good)
	require.NoError(t, err)
	tenantHdr := map[string]string{"X-Scope-OrgID": "acme"}

	t.Run("malformed protobuf is 400", func(t *testing.T) {
		resp, _ := post(t, url, "application/x-protobuf", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1}, tenantHdr)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
	t.Run("malformed json is 400", func(t *testing.T) {
		resp, _ := post(t, url, "application/json", []byte(`{"resourceSpans":[{`), tenantHdr)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
	t.Run("gzip bomb is 413", func(t *testing.T) {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write(bytes.Repeat([]byte{0}, 64<<20))
		require.NoError(t, zw.Close())
		req, _ := http.NewRequest(http.MethodPost, url, &b)
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("X-Scope-OrgID", "acme")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	})
	t.Run("oversized body is 413", func(t *testing.T) {
		resp, _ := post(t, url, "application/x-protobuf", bytes.Repeat([]byte{0}, 21<<20), tenantHdr)
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	})
	t.Run("tenant with a control character refused", func(t *testing.T) {
		// Go's HTTP client will not send such a header: write the request by hand.
		conn, err := net.Dial("tcp", s.otlpHTTP())
		require.NoError(t, err)
		defer conn.Close()
		_, err = fmt.Fprintf(conn, "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nX-Scope-OrgID: a\x01b\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", len(goodBytes))
		require.NoError(t, err)
		_, err = conn.Write(goodBytes)
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		resp.Body.Close()
		require.Contains(t, []int{http.StatusBadRequest, http.StatusUnauthorized}, resp.StatusCode)
	})
	for _, bad := range []string{"../x", "", strings.Repeat("a", 151), "a/b", ".."} {
		t.Run(fmt.Sprintf("tenant %q refused", bad), func(t *testing.T) {
			hdr := map[string]string{}
			if bad != "" {
				hdr["X-Scope-OrgID"] = bad
			}
			resp, _ := post(t, url, "application/x-protobuf", goodBytes, hdr)
			require.Contains(t, []int{http.StatusBadRequest, http.StatusUnauthorized}, resp.StatusCode)
		})
	}
	t.Run("grpc malformed and bad tenant are InvalidArgument/Unauthenticated", func(t *testing.T) {
		conn, err := grpc.NewClient(s.otlpGRPC(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		defer conn.Close()
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-scope-orgid", "../x")
		_, err = coltracepb.NewTraceServiceClient(conn).Export(ctx, good)
		require.Contains(t, []codes.Code{codes.InvalidArgument, codes.Unauthenticated}, status.Code(err), "%v", err)
		var raw []byte
		err = conn.Invoke(metadata.AppendToOutgoingContext(context.Background(), "x-scope-orgid", "acme"),
			"/opentelemetry.proto.collector.trace.v1.TraceService/Export", &rawMsg{b: []byte{0x0a, 0x05, 1}}, &rawMsg{b: raw},
			grpc.ForceCodec(rawCodec{}))
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	})
	t.Run("good data after all that is intact", func(t *testing.T) {
		resp, body := post(t, url, "application/x-protobuf", goodBytes, tenantHdr)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		got := s.traceByID(t, ids[0], "acme")
		require.Equal(t, 2, countSpans(got))
		require.Nil(t, s.traceByID(t, ids[0], "other"), "tenants are isolated")
	})
}

// rawMsg sends bytes as a gRPC message unchanged (with rawCodec).
type rawMsg struct{ b []byte }

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.(*rawMsg).b, nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	v.(*rawMsg).b = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }
