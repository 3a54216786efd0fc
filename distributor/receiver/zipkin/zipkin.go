package zipkin

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/rubatodb/rubato/distributor/receiver"
	zmodel "github.com/rubatodb/rubato/pkg/model/zipkin"
	"github.com/rubatodb/rubato/pkg/tenant"
)

// Config is the Zipkin HTTP server (Tempo/Collector keys).
type Config struct {
	// Endpoint is host:port to listen on.
	Endpoint string `yaml:"endpoint"`
	// MaxRequestBodySize bounds a body in bytes, as sent and decompressed.
	MaxRequestBodySize int64 `yaml:"max_request_body_size"`
	// TLS, when present, serves TLS (mTLS with client_ca_file) or refuses to start.
	TLS *receiver.TLSConfig `yaml:"tls,omitempty"`
}

// RegisterFlagsAndApplyDefaults sets the defaults (0.0.0.0:9411, 20 MiB).
func (c *Config) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	f.StringVar(&c.Endpoint, prefix+"endpoint", "0.0.0.0:9411", "Zipkin HTTP listen address.")
	f.Int64Var(&c.MaxRequestBodySize, prefix+"max-request-body-size", 20<<20, "Largest Zipkin body accepted in bytes, compressed or decompressed.")
}

// Validate checks c, loading its TLS certificates.
func (c *Config) Validate() error {
	if c.Endpoint == "" || c.MaxRequestBodySize <= 0 {
		return errors.New("zipkin: endpoint and a positive max_request_body_size are required")
	}
	if _, err := c.TLS.Load(); err != nil {
		return fmt.Errorf("zipkin: %w", err)
	}
	return nil
}

const (
	protocol  = "zipkin"
	transport = "http"
)

// Receiver serves Zipkin's span API.
type Receiver struct {
	services.Service

	cfg     Config
	sink    *receiver.Sink
	logger  log.Logger
	servers receiver.Servers
}

// New returns a Receiver; it listens when started.
func New(cfg Config, consumer receiver.Consumer, tenants tenant.Resolver, logger log.Logger, reg prometheus.Registerer) (*Receiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := receiver.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("zipkin receiver metrics: %w", err)
	}
	r := &Receiver{
		cfg:    cfg,
		sink:   &receiver.Sink{Consumer: consumer, Tenants: tenants, Metrics: m, Protocol: protocol, Transport: transport},
		logger: logger,
	}
	r.Service = services.NewBasicService(r.starting, r.running, r.stopping)
	return r, nil
}

func (r *Receiver) starting(context.Context) error {
	tlsCfg, err := r.cfg.TLS.Load()
	if err != nil {
		return fmt.Errorf("zipkin: %w", err)
	}
	if err := r.servers.ListenHTTPTLS(transport, r.cfg.Endpoint, r, tlsCfg); err != nil {
		return err
	}
	level.Info(r.logger).Log("msg", "zipkin receiver listening", "addr", r.Addr(), "security", r.cfg.TLS.String())
	r.servers.Start()
	return nil
}

func (r *Receiver) running(ctx context.Context) error { return r.servers.Wait(ctx) }

func (r *Receiver) stopping(error) error {
	r.servers.Stop()
	return nil
}

// Addr is the listen address once started.
func (r *Receiver) Addr() net.Addr { return r.servers.Addr(transport) }

// ServeHTTP handles one POST of spans.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed, use POST", http.StatusMethodNotAllowed)
		return
	}
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	v1 := strings.HasSuffix(req.URL.Path, "/api/v1/spans")
	var parse func([]byte) (*coltracepb.ExportTraceServiceRequest, error)
	switch {
	case mt == "application/x-thrift" || mt == "application/vnd.apache.thrift.binary":
		http.Error(w, "zipkin v1 thrift is not supported, send JSON or v2 protobuf", http.StatusUnsupportedMediaType)
		return
	case v1:
		parse = zmodel.ParseJSONV1
	case mt == "application/x-protobuf" || mt == "application/protobuf":
		parse = zmodel.ParseProtoV2
	default:
		parse = zmodel.ParseJSONV2
	}
	body, err := receiver.ReadBody(req, r.cfg.MaxRequestBodySize)
	if err != nil {
		code := receiver.BodyErrorStatus(err)
		if code == http.StatusBadRequest {
			r.sink.Malformed()
		}
		http.Error(w, err.Error(), code)
		return
	}
	td, err := parse(body)
	if err != nil {
		r.sink.Malformed()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if _, _, err := r.sink.ConsumeHTTP(req, td); err != nil {
		receiver.HTTPError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
