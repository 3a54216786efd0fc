package otlp

import (
	"context"
	"fmt"
	"net"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // registers the gzip compressor OTLP clients use

	"github.com/rubatodb/rubato/distributor/receiver"
	"github.com/rubatodb/rubato/pkg/tenant"
)

const (
	protocol      = "otlp"
	transportGRPC = "grpc"
	transportHTTP = "http"
)

// Receiver serves the enabled OTLP transports.
type Receiver struct {
	services.Service

	cfg     Config
	sink    receiver.Sink
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
		return nil, fmt.Errorf("otlp receiver metrics: %w", err)
	}
	r := &Receiver{
		cfg:    cfg,
		sink:   receiver.Sink{Consumer: consumer, Tenants: tenants, Metrics: m, Protocol: protocol},
		logger: logger,
	}
	r.Service = services.NewBasicService(r.starting, r.running, r.stopping)
	return r, nil
}

func (r *Receiver) starting(context.Context) error {
	if c := r.cfg.GRPC; c != nil {
		tlsCfg, err := c.TLS.Load()
		if err != nil {
			r.servers.Stop()
			return fmt.Errorf("otlp grpc: %w", err)
		}
		opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(c.MaxRecvMsgSizeMiB << 20), grpc.ForceServerCodec(rawCodec{})}
		if tlsCfg != nil {
			opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
		}
		g := grpc.NewServer(opts...)
		g.RegisterService(&traceServiceDesc, &traceService{sink: r.sink.ForTransport(transportGRPC)})
		if err := r.servers.ListenGRPC(transportGRPC, c.Endpoint, g); err != nil {
			r.servers.Stop()
			return err
		}
		level.Info(r.logger).Log("msg", "otlp grpc receiver listening", "addr", r.GRPCAddr(), "security", c.TLS.String())
	}
	if c := r.cfg.HTTP; c != nil {
		tlsCfg, err := c.TLS.Load()
		if err != nil {
			r.servers.Stop()
			return fmt.Errorf("otlp http: %w", err)
		}
		h := &httpHandler{sink: r.sink.ForTransport(transportHTTP), limit: c.MaxRequestBodySize, logger: r.logger}
		if err := r.servers.ListenHTTPTLS(transportHTTP, c.Endpoint, h.mux(), tlsCfg); err != nil {
			r.servers.Stop()
			return err
		}
		level.Info(r.logger).Log("msg", "otlp http receiver listening", "addr", r.HTTPAddr(), "security", c.TLS.String())
	}
	r.servers.Start()
	return nil
}

func (r *Receiver) running(ctx context.Context) error { return r.servers.Wait(ctx) }

func (r *Receiver) stopping(error) error {
	r.servers.Stop()
	return nil
}

// GRPCAddr is the gRPC listen address once started (nil if off).
func (r *Receiver) GRPCAddr() net.Addr { return r.servers.Addr(transportGRPC) }

// HTTPAddr is the HTTP listen address once started (nil if off).
func (r *Receiver) HTTPAddr() net.Addr { return r.servers.Addr(transportHTTP) }

type traceService struct {
	coltracepb.UnimplementedTraceServiceServer
	sink *receiver.Sink
}

// Export hands the request to the Consumer; its errors are gRPC statuses
// and are returned as they are.
func (s *traceService) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	rejected, msg, err := s.sink.ConsumeGRPC(ctx, req)
	if err != nil {
		return nil, err
	}
	return response(rejected, msg), nil
}

// exportRaw hands the undecoded body to a RawConsumer.
func (s *traceService) exportRaw(ctx context.Context, rc receiver.RawConsumer, body []byte) (*coltracepb.ExportTraceServiceResponse, error) {
	id, err := s.sink.Tenants.FromGRPC(ctx)
	if err != nil {
		return nil, receiver.TenantError(err)
	}
	rejected, msg, err := s.sink.ConsumeRaw(tenant.WithTenant(ctx, id), rc, body)
	if err != nil {
		return nil, err
	}
	return response(rejected, msg), nil
}

func response(rejected int64, msg string) *coltracepb.ExportTraceServiceResponse {
	resp := &coltracepb.ExportTraceServiceResponse{}
	if rejected > 0 || msg != "" {
		resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{RejectedSpans: rejected, ErrorMessage: msg}
	}
	return resp
}
