package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs is one generated PKI, as files and as loaded values.
type Certs struct {
	// CAFile is the CA's PEM certificate (the server's client_ca_file, and
	// the clients' root).
	CAFile string
	// CertFile and KeyFile are the server's (SANs 127.0.0.1, localhost).
	CertFile, KeyFile string
	// ClientCertFile and ClientKeyFile are a client certificate the CA signed.
	ClientCertFile, ClientKeyFile string

	// Roots trusts the CA.
	Roots *x509.CertPool
	// Client is the CA-signed client certificate; Stranger is one signed
	// by a CA the server does not trust.
	Client, Stranger tls.Certificate
}

type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// New writes a CA, a server and a client certificate under dir.
func New(t testing.TB, dir string) *Certs {
	t.Helper()
	ca := newCA(t, "rubato test CA")
	stranger := newCA(t, "stranger CA")
	c := &Certs{
		CAFile:         filepath.Join(dir, "ca.pem"),
		CertFile:       filepath.Join(dir, "server.pem"),
		KeyFile:        filepath.Join(dir, "server-key.pem"),
		ClientCertFile: filepath.Join(dir, "client.pem"),
		ClientKeyFile:  filepath.Join(dir, "client-key.pem"),
		Roots:          x509.NewCertPool(),
	}
	c.Roots.AddCert(ca.cert)
	writePEM(t, c.CAFile, "CERTIFICATE", ca.cert.Raw)
	srv, srvKey := ca.sign(t, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	writePEM(t, c.CertFile, "CERTIFICATE", srv)
	writeKey(t, c.KeyFile, srvKey)
	cli, cliKey := ca.sign(t, "client", x509.ExtKeyUsageClientAuth)
	writePEM(t, c.ClientCertFile, "CERTIFICATE", cli)
	writeKey(t, c.ClientKeyFile, cliKey)
	c.Client = tls.Certificate{Certificate: [][]byte{cli}, PrivateKey: cliKey}
	str, strKey := stranger.sign(t, "stranger", x509.ExtKeyUsageClientAuth)
	c.Stranger = tls.Certificate{Certificate: [][]byte{str}, PrivateKey: strKey}
	return c
}

// ClientTLS is a client config trusting the CA; with cert, it presents
// that client certificate.
func (c *Certs) ClientTLS(cert *tls.Certificate) *tls.Config {
	cfg := &tls.Config{RootCAs: c.Roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

func newCA(t testing.TB, name string) *issuer {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{cert: cert, key: key}
}

func (i *issuer) sign(t testing.TB, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, i.cert, &key.PublicKey, i.key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writeKey(t testing.TB, path string, key *ecdsa.PrivateKey) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, path, "PRIVATE KEY", der)
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
