package jaeger

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"sync"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/services"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // accept gzip-compressed calls

	"github.com/rubatodb/rubato/distributor/receiver"
	jmodel "github.com/rubatodb/rubato/pkg/model/jaeger"
	"github.com/rubatodb/rubato/pkg/tenant"
)

const (
	protocol           = "jaeger"
	transportGRPC      = "grpc"
	transportHTTP      = "thrift_http"
	transportCompact   = "udp_thrift_compact"
	transportBinaryUDP = "udp_thrift_binary"
)

// Receiver serves the enabled Jaeger transports.
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
		return nil, fmt.Errorf("jaeger receiver metrics: %w", err)
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
	err := r.listen()
	if err != nil {
		r.servers.Stop()
		return err
	}
	r.servers.Start()
	return nil
}

func (r *Receiver) listen() error {
	if c := r.cfg.GRPC; c != nil {
		tlsCfg, err := c.TLS.Load()
		if err != nil {
			return fmt.Errorf("jaeger grpc: %w", err)
		}
		opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(c.MaxRecvMsgSizeMiB << 20), grpc.ForceServerCodec(gogoCodec{})}
		if tlsCfg != nil {
			opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
		}
		g := grpc.NewServer(opts...)
		api_v2.RegisterCollectorServiceServer(g, &collector{sink: r.sink.ForTransport(transportGRPC)})
		if err := r.servers.ListenGRPC(transportGRPC, c.Endpoint, g); err != nil {
			return err
		}
		level.Info(r.logger).Log("msg", "jaeger grpc receiver listening", "addr", r.GRPCAddr(), "security", c.TLS.String())
	}
	if c := r.cfg.ThriftHTTP; c != nil {
		tlsCfg, err := c.TLS.Load()
		if err != nil {
			return fmt.Errorf("jaeger thrift_http: %w", err)
		}
		h := &thriftHandler{sink: r.sink.ForTransport(transportHTTP), limit: c.MaxRequestBodySize}
		mux := http.NewServeMux()
		mux.Handle("/api/traces", h)
		if err := r.servers.ListenHTTPTLS(transportHTTP, c.Endpoint, mux, tlsCfg); err != nil {
			return err
		}
		level.Info(r.logger).Log("msg", "jaeger thrift_http receiver listening", "addr", r.ThriftHTTPAddr(), "security", c.TLS.String())
	}
	for _, u := range []struct {
		cfg   *UDPConfig
		name  string
		proto jmodel.Protocol
	}{{r.cfg.ThriftCompact, transportCompact, jmodel.Compact}, {r.cfg.ThriftBinary, transportBinaryUDP, jmodel.Binary}} {
		if u.cfg == nil {
			continue
		}
		a := &agentServer{cfg: *u.cfg, proto: u.proto, sink: r.sink.ForTransport(u.name), logger: r.logger}
		if err := r.servers.ListenUDP(u.name, u.cfg.Endpoint, a.serve); err != nil {
			return err
		}
	}
	return nil
}

func (r *Receiver) running(ctx context.Context) error { return r.servers.Wait(ctx) }

func (r *Receiver) stopping(error) error {
	r.servers.Stop()
	return nil
}

// GRPCAddr is the gRPC listen address once started (nil if off).
func (r *Receiver) GRPCAddr() net.Addr { return r.servers.Addr(transportGRPC) }

// ThriftHTTPAddr is the Thrift HTTP listen address once started (nil if off).
func (r *Receiver) ThriftHTTPAddr() net.Addr { return r.servers.Addr(transportHTTP) }

// ThriftCompactAddr is the compact UDP address once started (nil if off).
func (r *Receiver) ThriftCompactAddr() net.Addr { return r.servers.Addr(transportCompact) }

// ThriftBinaryAddr is the binary UDP address once started (nil if off).
func (r *Receiver) ThriftBinaryAddr() net.Addr { return r.servers.Addr(transportBinaryUDP) }

type collector struct {
	sink *receiver.Sink
}

// PostSpans converts the batch and returns the Consumer's error as is.
func (c *collector) PostSpans(ctx context.Context, req *api_v2.PostSpansRequest) (*api_v2.PostSpansResponse, error) {
	td := jmodel.ProtoToOTLP(&req.Batch)
	if _, _, err := c.sink.ConsumeGRPC(ctx, td); err != nil {
		return nil, err
	}
	return &api_v2.PostSpansResponse{}, nil
}

type thriftHandler struct {
	sink  *receiver.Sink
	limit int64
}

func (h *thriftHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed, use POST", http.StatusMethodNotAllowed)
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-thrift" && mt != "application/vnd.apache.thrift.binary" {
		http.Error(w, fmt.Sprintf("unsupported content type %q, use application/x-thrift", r.Header.Get("Content-Type")), http.StatusBadRequest)
		return
	}
	body, err := receiver.ReadBody(r, h.limit)
	if err != nil {
		code := receiver.BodyErrorStatus(err)
		if code == http.StatusBadRequest {
			h.sink.Malformed()
		}
		http.Error(w, err.Error(), code)
		return
	}
	batch, err := jmodel.DecodeThriftBatch(body)
	if err != nil {
		h.sink.Malformed()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if _, _, err := h.sink.ConsumeHTTP(r, jmodel.ThriftToOTLP(batch)); err != nil {
		receiver.HTTPError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

type agentServer struct {
	cfg    UDPConfig
	proto  jmodel.Protocol
	sink   *receiver.Sink
	logger log.Logger
}

// serve reads packets until pc is closed, handing them to workers.
func (a *agentServer) serve(pc net.PacketConn) error {
	queue := make(chan []byte, a.cfg.QueueSize)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range a.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range queue {
				a.handle(ctx, p)
			}
		}()
	}
	defer func() {
		close(queue)
		cancel() // cut Consumer calls still running at shutdown
		wg.Wait()
	}()
	buf := make([]byte, a.cfg.MaxPacketSize+1)
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		if n > a.cfg.MaxPacketSize {
			a.sink.Malformed()
			continue
		}
		p := make([]byte, n)
		copy(p, buf[:n])
		select {
		case queue <- p:
		default:
			a.sink.Metrics.RefusedSpans.WithLabelValues(protocol, a.sink.Transport, "queue_full").Inc()
		}
	}
}

func (a *agentServer) handle(ctx context.Context, p []byte) {
	batch, err := jmodel.DecodeAgentMessage(p, a.proto)
	if err != nil {
		a.sink.Malformed()
		level.Debug(a.logger).Log("msg", "dropped malformed jaeger agent packet", "transport", a.sink.Transport, "err", err)
		return
	}
	td := jmodel.ThriftToOTLP(batch)
	id, err := a.sink.Tenants.FromGRPC(ctx)
	if err != nil {
		_, _, _ = a.sink.ConsumeGRPC(ctx, td) // counts the refusal
		return
	}
	if _, _, err := a.sink.Consume(tenant.WithTenant(ctx, id), td); err != nil {
		level.Warn(a.logger).Log("msg", "jaeger agent batch refused", "transport", a.sink.Transport, "err", err)
	}
}
