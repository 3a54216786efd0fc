package kubetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Keep in sync with scripts/kube.sh and scripts/helm.sh.
const (
	kubeVersion = "v1.36.3"
	helmVersion = "v3.22.0"
)

var repoRoot = filepath.Join("..", "..", "..")

// binaries finds kube-apiserver and etcd (scripts/kube.sh, or the
// directory $KUBE_BIN_DIR) and helm (scripts/helm.sh, or $HELM). They take
// long to build, so the test does not build them: when one is missing it
// skips with a message naming the script, and fails instead under CI=true,
// where scripts/test.sh has built them.
func binaries(t *testing.T) (apiserver, etcd, helm string) {
	t.Helper()
	cache := os.Getenv("RUBATO_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "rubato")
	}
	dir := os.Getenv("KUBE_BIN_DIR")
	if dir == "" {
		dir = filepath.Join(cache, "kube-"+kubeVersion)
	}
	apiserver, etcd = filepath.Join(dir, "kube-apiserver"), filepath.Join(dir, "etcd")
	helm = os.Getenv("HELM")
	if helm == "" {
		helm = filepath.Join(cache, "helm-"+helmVersion)
	}
	var missing []string
	for _, b := range []string{apiserver, etcd, helm} {
		if fi, err := os.Stat(b); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("missing %s: run scripts/kube.sh and scripts/helm.sh (or set KUBE_BIN_DIR, HELM)",
			strings.Join(missing, ", "))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return apiserver, etcd, helm
}

// cluster is a kube-apiserver on etcd, both on 127.0.0.1, and clients
// for it. No kubelet, scheduler or controller-manager runs: objects are
// stored and admitted, nothing acts on them.
type cluster struct {
	kubeconfig string
	client     kubernetes.Interface
	dynamic    dynamic.Interface
	mapper     meta.RESTMapper
}

// freePort returns a port that was free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProcess runs a binary with its output in dir/name.log, stopping
// it (SIGTERM, then SIGKILL) when the test ends.
func startProcess(t *testing.T, dir, name, bin string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); logFile.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				if len(b) > 8000 {
					b = b[len(b)-8000:]
				}
				t.Logf("%s log (tail):\n%s", name, b)
			}
		}
	})
}

// waitHTTP polls url until it answers 200 or the process's time is up.
func waitHTTP(t *testing.T, client *http.Client, url, token string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err == nil {
			buf := make([]byte, 2048)
			n, _ := resp.Body.Read(buf)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, buf[:n])
		} else {
			last = err.Error()
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s not ready after %s: %s", url, timeout, last)
}

// startCluster starts etcd and kube-apiserver on free 127.0.0.1 ports with
// a temporary data dir, a generated serving certificate and service-account
// key, and a static token for a system:masters user; it waits for /readyz
// and writes a kubeconfig for helm.
func startCluster(t *testing.T, apiserverBin, etcdBin string) *cluster {
	t.Helper()
	dir := t.TempDir()

	// etcd: one member, 127.0.0.1 only. --unsafe-no-fsync: a throwaway
	// store on a shared test machine.
	clientPort, peerPort := freePort(t), freePort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	startProcess(t, dir, "etcd", etcdBin,
		"--name=kubetest",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	waitHTTP(t, http.DefaultClient, etcdURL+"/health", "", time.Minute)

	// Serving certificate for 127.0.0.1, self-signed (it is its own CA).
	servingKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubetest-apiserver"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &servingKey.PublicKey, servingKey)
	require.NoError(t, err)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})
	servingKeyPEM := pemKey(t, servingKey)
	certFile, keyFile := filepath.Join(dir, "serving.crt"), filepath.Join(dir, "serving.key")
	require.NoError(t, os.WriteFile(certFile, certPEM, 0o600))
	require.NoError(t, os.WriteFile(keyFile, servingKeyPEM, 0o600))

	// Service-account signing key (the API server refuses to start without).
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	saKeyFile := filepath.Join(dir, "sa.key")
	require.NoError(t, os.WriteFile(saKeyFile, pemKey(t, saKey), 0o600))

	// Static token of a system:masters user: RBAC stays on, this user passes it.
	token := rand.Text()
	tokenFile := filepath.Join(dir, "tokens.csv")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token+`,kubetest-admin,kubetest-admin,"system:masters"`+"\n"), 0o600))

	port := freePort(t)
	server := "https://127.0.0.1:" + strconv.Itoa(port)
	startProcess(t, dir, "kube-apiserver", apiserverBin,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--tls-cert-file="+certFile,
		"--tls-private-key-file="+keyFile,
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--token-auth-file="+tokenFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubetest.invalid",
		"--service-account-key-file="+saKeyFile,
		"--service-account-signing-key-file="+saKeyFile,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--profiling=false",
		"--v=1",
	)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	httpClient := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	waitHTTP(t, httpClient, server+"/readyz", token, 3*time.Minute)

	kubeconfig := filepath.Join(dir, "kubeconfig")
	require.NoError(t, os.WriteFile(kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: kubetest-admin
  user:
    token: %s
contexts:
- name: kubetest
  context: {cluster: kubetest, user: kubetest-admin}
current-context: kubetest
`, server, certFile, token), 0o600))

	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	require.NoError(t, err)
	cfg.Timeout = 30 * time.Second
	return &cluster{
		kubeconfig: kubeconfig,
		client:     kubernetes.NewForConfigOrDie(cfg),
		dynamic:    dynamic.NewForConfigOrDie(cfg),
	}
}

func pemKey(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// ctx is the context of API calls in these tests.
func ctx(t *testing.T) context.Context { return t.Context() }
