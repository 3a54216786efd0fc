package zipkin

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/distributor/receiver"
	"github.com/rubatodb/rubato/distributor/receiver/internal/receivertest"
	"github.com/rubatodb/rubato/distributor/receiver/tlstest"
	"github.com/rubatodb/rubato/pkg/tenant"
)

func TestTLS(t *testing.T) {
	certs := tlstest.New(t, t.TempDir())
	rec := &receivertest.Recorder{}
	r, err := New(Config{Endpoint: "127.0.0.1:0", MaxRequestBodySize: 1 << 20,
		TLS: &receiver.TLSConfig{CertFile: certs.CertFile, KeyFile: certs.KeyFile, ClientCAFile: certs.CAFile}},
		rec, tenant.Resolver{}, log.NewNopLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r)) })
	body := []byte(`[{"traceId":"0af7651916cd43dd8448eb211c80319c","id":"b7ad6b7169203331","name":"get","timestamp":1700000000000000,"duration":10,"localEndpoint":{"serviceName":"api"}}]`)
	post := func(scheme string, rt *http.Transport) (int, error) {
		defer rt.CloseIdleConnections()
		resp, err := (&http.Client{Transport: rt}).Post(scheme+"://"+r.Addr().String()+"/api/v2/spans", "application/json", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	code, err := post("https", &http.Transport{TLSClientConfig: certs.ClientTLS(&certs.Client)})
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, code)
	require.Len(t, rec.Calls(), 1)

	_, err = post("https", &http.Transport{TLSClientConfig: certs.ClientTLS(nil)})
	require.Error(t, err, "no client certificate accepted")
	_, err = post("https", &http.Transport{TLSClientConfig: certs.ClientTLS(&certs.Stranger)})
	require.Error(t, err, "untrusted client certificate accepted")
	code, err = post("http", &http.Transport{})
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, code, "plaintext gets the TLS server's 400")
	require.Len(t, rec.Calls(), 1, "a refused client reached the consumer")

	_, err = New(Config{Endpoint: "127.0.0.1:0", MaxRequestBodySize: 1, TLS: &receiver.TLSConfig{CertFile: certs.CertFile, KeyFile: "/nonexistent/key.pem"}},
		rec, tenant.Resolver{}, log.NewNopLogger(), prometheus.NewRegistry())
	require.ErrorContains(t, err, "zipkin: tls")
	require.ErrorContains(t, err, "/nonexistent/key.pem")
}
