package jaeger

import (
	"errors"
	"flag"
	"fmt"

	"github.com/rubatodb/rubato/distributor/receiver"
)

// Config enables the Jaeger transports (Tempo's protocol names). A nil
// transport is off.
type Config struct {
	GRPC          *GRPCConfig       `yaml:"grpc"`
	ThriftHTTP    *ThriftHTTPConfig `yaml:"thrift_http"`
	ThriftCompact *UDPConfig        `yaml:"thrift_compact"`
	ThriftBinary  *UDPConfig        `yaml:"thrift_binary"`
}

// GRPCConfig is the api_v2 collector gRPC server.
type GRPCConfig struct {
	Endpoint          string `yaml:"endpoint"`
	MaxRecvMsgSizeMiB int    `yaml:"max_recv_msg_size_mib"`
	// TLS, when present, serves TLS (mTLS with client_ca_file) or refuses to start.
	TLS *receiver.TLSConfig `yaml:"tls,omitempty"`
}

// ThriftHTTPConfig is the POST /api/traces server.
type ThriftHTTPConfig struct {
	Endpoint string `yaml:"endpoint"`
	// MaxRequestBodySize bounds a body in bytes, as sent and decompressed.
	MaxRequestBodySize int64 `yaml:"max_request_body_size"`
	// TLS, when present, serves TLS (mTLS with client_ca_file) or refuses to start.
	TLS *receiver.TLSConfig `yaml:"tls,omitempty"`
}

// UDPConfig is an agent UDP server.
type UDPConfig struct {
	Endpoint string `yaml:"endpoint"`
	// MaxPacketSize is the largest datagram read; longer ones are dropped.
	MaxPacketSize int `yaml:"max_packet_size"`
	// QueueSize is how many packets may wait for a worker before new ones
	// are dropped.
	QueueSize int `yaml:"queue_size"`
	// Workers decode and consume packets concurrently.
	Workers int `yaml:"workers"`
}

// RegisterFlagsAndApplyDefaults enables every transport with Tempo's
// default endpoints and registers their flags under prefix.
func (c *Config) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	c.GRPC, c.ThriftHTTP = &GRPCConfig{}, &ThriftHTTPConfig{}
	c.ThriftCompact, c.ThriftBinary = &UDPConfig{}, &UDPConfig{}
	c.GRPC.RegisterFlagsAndApplyDefaults(prefix+"grpc.", f)
	c.ThriftHTTP.RegisterFlagsAndApplyDefaults(prefix+"thrift-http.", f)
	c.ThriftCompact.registerFlags(prefix+"thrift-compact.", "0.0.0.0:6831", f)
	c.ThriftBinary.registerFlags(prefix+"thrift-binary.", "0.0.0.0:6832", f)
}

// RegisterFlagsAndApplyDefaults sets the defaults (0.0.0.0:14250, 4 MiB).
func (c *GRPCConfig) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	f.StringVar(&c.Endpoint, prefix+"endpoint", "0.0.0.0:14250", "Jaeger gRPC listen address.")
	f.IntVar(&c.MaxRecvMsgSizeMiB, prefix+"max-recv-msg-size-mib", 4, "Largest Jaeger gRPC message accepted, in MiB.")
}

// RegisterFlagsAndApplyDefaults sets the defaults (0.0.0.0:14268, 20 MiB).
func (c *ThriftHTTPConfig) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	f.StringVar(&c.Endpoint, prefix+"endpoint", "0.0.0.0:14268", "Jaeger Thrift HTTP listen address.")
	f.Int64Var(&c.MaxRequestBodySize, prefix+"max-request-body-size", 20<<20, "Largest Jaeger Thrift HTTP body accepted in bytes.")
}

// RegisterCompactFlagsAndApplyDefaults sets the compact defaults (0.0.0.0:6831).
func (c *UDPConfig) RegisterCompactFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	c.registerFlags(prefix, "0.0.0.0:6831", f)
}

// RegisterBinaryFlagsAndApplyDefaults sets the binary defaults (0.0.0.0:6832).
func (c *UDPConfig) RegisterBinaryFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	c.registerFlags(prefix, "0.0.0.0:6832", f)
}

func (c *UDPConfig) registerFlags(prefix, endpoint string, f *flag.FlagSet) {
	f.StringVar(&c.Endpoint, prefix+"endpoint", endpoint, "Jaeger agent UDP listen address.")
	f.IntVar(&c.MaxPacketSize, prefix+"max-packet-size", 65000, "Largest UDP packet read, in bytes.")
	f.IntVar(&c.QueueSize, prefix+"queue-size", 1000, "Packets waiting for a worker before new ones are dropped.")
	f.IntVar(&c.Workers, prefix+"workers", 10, "Workers decoding and consuming packets.")
}

// Validate checks the enabled transports.
func (c *Config) Validate() error {
	if c.GRPC != nil {
		if c.GRPC.Endpoint == "" || c.GRPC.MaxRecvMsgSizeMiB <= 0 {
			return errors.New("jaeger grpc: endpoint and a positive max_recv_msg_size_mib are required")
		}
		if _, err := c.GRPC.TLS.Load(); err != nil {
			return fmt.Errorf("jaeger grpc: %w", err)
		}
	}
	if c.ThriftHTTP != nil {
		if c.ThriftHTTP.Endpoint == "" || c.ThriftHTTP.MaxRequestBodySize <= 0 {
			return errors.New("jaeger thrift_http: endpoint and a positive max_request_body_size are required")
		}
		if _, err := c.ThriftHTTP.TLS.Load(); err != nil {
			return fmt.Errorf("jaeger thrift_http: %w", err)
		}
	}
	for _, u := range []*UDPConfig{c.ThriftCompact, c.ThriftBinary} {
		if u != nil && (u.Endpoint == "" || u.MaxPacketSize <= 0 || u.MaxPacketSize > 65535 || u.Workers <= 0 || u.QueueSize < 0) {
			return errors.New("jaeger udp: endpoint, max_packet_size in 1..65535, workers > 0 and queue_size >= 0 are required")
		}
	}
	return nil
}
