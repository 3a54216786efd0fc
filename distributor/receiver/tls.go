package receiver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// TLSConfig is a receiver's server TLS in the OpenTelemetry Collector's keys
// (configtls.ServerConfig), as Tempo's receivers take them under
// `protocols.<name>.tls` (or `zipkin.tls`). A nil *TLSConfig is plaintext;
// a present one is TLS or nothing: Load fails on anything it cannot honour,
// and the receiver then refuses to start rather than listen in plaintext.
type TLSConfig struct {
	// CertFile and KeyFile are the server's PEM certificate chain and key.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, turns on mutual TLS: every client must present
	// a certificate signed by one of these PEM CAs.
	ClientCAFile string `yaml:"client_ca_file"`
	// MinVersion and MaxVersion bound the protocol: "1.0" … "1.3". The
	// minimum defaults to 1.2 (as the Collector), the maximum to Go's.
	MinVersion string `yaml:"min_version"`
	MaxVersion string `yaml:"max_version"`
	// CipherSuites restricts TLS 1.0–1.2 suites by Go name
	// (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, …); empty: Go's defaults.
	CipherSuites []string `yaml:"cipher_suites"`
}

// IgnoredYAMLKeys are the Collector TLS keys Rubato accepts and ignores
// (the config loader warns about them by name): ca_file has no use on a
// server, and certificates are read once at start-up.
func (TLSConfig) IgnoredYAMLKeys() []string {
	return []string{"ca_file", "ca_pem", "include_system_ca_certs_pool", "reload_interval", "reload_client_ca_file"}
}

var tlsVersions = map[string]uint16{
	"1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13,
}

// Load reads the certificates and returns the server's tls.Config; nil
// for a nil c. Every error names the setting and the file.
func (c *TLSConfig) Load() (*tls.Config, error) {
	if c == nil {
		return nil, nil
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("tls: cert_file and key_file are required (remove the tls block for plaintext)")
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: cert_file %q, key_file %q: %w", c.CertFile, c.KeyFile, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.MinVersion != "" {
		v, ok := tlsVersions[c.MinVersion]
		if !ok {
			return nil, fmt.Errorf("tls: min_version %q: want 1.0, 1.1, 1.2 or 1.3", c.MinVersion)
		}
		cfg.MinVersion = v
	}
	if c.MaxVersion != "" {
		v, ok := tlsVersions[c.MaxVersion]
		if !ok {
			return nil, fmt.Errorf("tls: max_version %q: want 1.0, 1.1, 1.2 or 1.3", c.MaxVersion)
		}
		if v < cfg.MinVersion {
			return nil, fmt.Errorf("tls: max_version %s is below min_version", c.MaxVersion)
		}
		cfg.MaxVersion = v
	}
	for _, name := range c.CipherSuites {
		id, ok := cipherSuite(name)
		if !ok {
			return nil, fmt.Errorf("tls: cipher_suites: %q is not a secure suite Go knows", name)
		}
		cfg.CipherSuites = append(cfg.CipherSuites, id)
	}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: client_ca_file %q holds no PEM certificate", c.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func cipherSuite(name string) (uint16, bool) {
	for _, s := range tls.CipherSuites() {
		if strings.EqualFold(s.Name, name) {
			return s.ID, true
		}
	}
	return 0, false
}

// String says how a listener is secured, for logs.
func (c *TLSConfig) String() string {
	switch {
	case c == nil:
		return "plaintext"
	case c.ClientCAFile != "":
		return "mtls"
	default:
		return "tls"
	}
}
