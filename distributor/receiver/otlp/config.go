package otlp

import (
	"errors"
	"flag"
	"fmt"

	"github.com/rubatodb/rubato/distributor/receiver"
)

// Config enables the OTLP transports. A nil transport is off.
type Config struct {
	GRPC *GRPCConfig `yaml:"grpc"`
	HTTP *HTTPConfig `yaml:"http"`
}

// GRPCConfig is the OTLP/gRPC server (Tempo/Collector keys).
type GRPCConfig struct {
	// Endpoint is host:port to listen on.
	Endpoint string `yaml:"endpoint"`
	// MaxRecvMsgSizeMiB bounds one decoded gRPC message (ResourceExhausted above).
	MaxRecvMsgSizeMiB int `yaml:"max_recv_msg_size_mib"`
	// TLS, when present, serves TLS (mTLS with client_ca_file) or refuses to start.
	TLS *receiver.TLSConfig `yaml:"tls,omitempty"`
}

// HTTPConfig is the OTLP/HTTP server (Tempo/Collector keys).
type HTTPConfig struct {
	// Endpoint is host:port to listen on.
	Endpoint string `yaml:"endpoint"`
	// MaxRequestBodySize bounds a body in bytes, both as sent and once
	// decompressed (413 above).
	MaxRequestBodySize int64 `yaml:"max_request_body_size"`
	// TLS, when present, serves TLS (mTLS with client_ca_file) or refuses to start.
	TLS *receiver.TLSConfig `yaml:"tls,omitempty"`
}

// RegisterFlagsAndApplyDefaults enables both transports with Tempo's default
// endpoints and registers their flags under prefix.
func (c *Config) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	c.GRPC, c.HTTP = &GRPCConfig{}, &HTTPConfig{}
	c.GRPC.RegisterFlagsAndApplyDefaults(prefix+"grpc.", f)
	c.HTTP.RegisterFlagsAndApplyDefaults(prefix+"http.", f)
}

// RegisterFlagsAndApplyDefaults sets the defaults (0.0.0.0:4317, 4 MiB).
func (c *GRPCConfig) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	f.StringVar(&c.Endpoint, prefix+"endpoint", "0.0.0.0:4317", "OTLP gRPC listen address.")
	f.IntVar(&c.MaxRecvMsgSizeMiB, prefix+"max-recv-msg-size-mib", 4, "Largest OTLP gRPC message accepted, in MiB.")
}

// RegisterFlagsAndApplyDefaults sets the defaults (0.0.0.0:4318, 20 MiB).
func (c *HTTPConfig) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	f.StringVar(&c.Endpoint, prefix+"endpoint", "0.0.0.0:4318", "OTLP HTTP listen address.")
	f.Int64Var(&c.MaxRequestBodySize, prefix+"max-request-body-size", 20<<20, "Largest OTLP HTTP body accepted in bytes, compressed or decompressed.")
}

// Validate checks the enabled transports, loading their TLS certificates.
func (c *Config) Validate() error {
	if c.GRPC != nil {
		if c.GRPC.Endpoint == "" || c.GRPC.MaxRecvMsgSizeMiB <= 0 {
			return errors.New("otlp grpc: endpoint and a positive max_recv_msg_size_mib are required")
		}
		if _, err := c.GRPC.TLS.Load(); err != nil {
			return fmt.Errorf("otlp grpc: %w", err)
		}
	}
	if c.HTTP != nil {
		if c.HTTP.Endpoint == "" || c.HTTP.MaxRequestBodySize <= 0 {
			return errors.New("otlp http: endpoint and a positive max_request_body_size are required")
		}
		if _, err := c.HTTP.TLS.Load(); err != nil {
			return fmt.Errorf("otlp http: %w", err)
		}
	}
	return nil
}
