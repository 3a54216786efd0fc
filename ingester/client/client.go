// Package client is the gRPC client of the ingester API, used by
// distributors and queriers.
//
// Invariants: one connection per ingester address, shared by all callers
// and safe for concurrent use (dskit's ring/client.Pool); every call
// carries the tenant in the x-scope-orgid metadata. The pool drops the
// connection of an instance that has left the ring (or is no longer
// healthy in it) and, with health checks on, of an instance that fails its
// gRPC health check; a caller that got a client before it was dropped sees
// its calls fail (Unavailable or Canceled), never hang, and the next Get
// dials afresh. Connections are closed by the pool, or all at once when it
// stops.
package client

import (
	"context"
	"flag"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/ring"
	ringclient "github.com/grafana/dskit/ring/client"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// MaxMessageSize bounds messages between components (default 64 MiB).
const MaxMessageSize = 64 << 20

// Ring identity of the ingesters, shared by the ingesters' lifecyclers and
// every component that reads their ring.
const (
	RingName = "ingester"
	RingKey  = "ring"
)

// Config is Tempo's `ingester_client` block.
type Config struct {
	PoolConfig PoolConfig `yaml:"pool_config"`
	// RemoteTimeout bounds one push or query to one ingester.
	RemoteTimeout time.Duration `yaml:"remote_timeout"`
}

// PoolConfig is `ingester_client.pool_config` (Tempo's keys).
type PoolConfig struct {
	CheckInterval      time.Duration `yaml:"checkinterval"`
	HealthCheckEnabled bool          `yaml:"healthcheckenabled"`
	HealthCheckTimeout time.Duration `yaml:"healthchecktimeout"`
}

// RegisterFlagsAndApplyDefaults registers the flags under prefix.
func (c *Config) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	f.DurationVar(&c.RemoteTimeout, prefix+"remote-timeout", 5*time.Second, "Timeout of one push to, or query of, one ingester.")
	f.DurationVar(&c.PoolConfig.CheckInterval, prefix+"client-cleanup-period", 15*time.Second, "How often clients of ingesters that left the ring, or failed their health check, are closed.")
	f.BoolVar(&c.PoolConfig.HealthCheckEnabled, prefix+"health-check-ingesters", true, "Health-check each ingester client every client-cleanup-period and close those that fail.")
	f.DurationVar(&c.PoolConfig.HealthCheckTimeout, prefix+"health-check-timeout", time.Second, "Timeout of one ingester health check.")
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.RemoteTimeout <= 0 {
		return fmt.Errorf("ingester_client.remote_timeout must be positive, got %s", c.RemoteTimeout)
	}
	if c.PoolConfig.CheckInterval <= 0 {
		return fmt.Errorf("ingester_client.pool_config.checkinterval must be positive, got %s", c.PoolConfig.CheckInterval)
	}
	return nil
}

// Pool holds one connection per ingester. It is a service: while running
// it closes the clients of ingesters gone from the ring and, if enabled,
// of those failing their health check.
type Pool struct {
	*ringclient.Pool
}

// NewPool returns a pool of clients of the ingesters in r (nil r: no
// discovery, clients are dropped only by failed health checks). Extra dial
// options follow the defaults (plaintext, 64 MiB messages).
func NewPool(cfg PoolConfig, r ring.ReadRing, logger log.Logger, reg prometheus.Registerer, opts ...grpc.DialOption) *Pool {
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)),
	}, opts...)
	clients := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rubato_ingester_clients", Help: "Open clients of ingesters in this process's pool.",
	})
	if reg != nil {
		reg.MustRegister(clients)
	}
	var discovery ringclient.PoolServiceDiscovery
	if r != nil {
		discovery = ringclient.NewRingServiceDiscovery(r)
	}
	factory := ringclient.PoolAddrFunc(func(addr string) (ringclient.PoolClient, error) {
		cc, err := grpc.NewClient(addr, opts...)
		if err != nil {
			return nil, fmt.Errorf("dial ingester %s: %w", addr, err)
		}
		return &conn{IngesterClient: rubatopb.NewIngesterClient(cc), HealthClient: grpc_health_v1.NewHealthClient(cc), cc: cc}, nil
	})
	return &Pool{Pool: ringclient.NewPool("ingester", ringclient.PoolConfig{
		CheckInterval:      cfg.CheckInterval,
		HealthCheckEnabled: cfg.HealthCheckEnabled,
		HealthCheckTimeout: cfg.HealthCheckTimeout,
	}, discovery, factory, clients, logger)}
}

// Get returns a client for the ingester at addr.
func (p *Pool) Get(addr string) (rubatopb.IngesterClient, error) {
	c, err := p.GetClientFor(addr)
	if err != nil {
		return nil, err
	}
	return c.(*conn), nil
}

// Close closes every client; the pool stays usable (Get dials again).
func (p *Pool) Close() error {
	for _, addr := range p.RegisteredAddresses() {
		p.RemoveClientFor(addr)
	}
	return nil
}

// conn is one pooled connection: the ingester API and the health check
// over it.
type conn struct {
	rubatopb.IngesterClient
	grpc_health_v1.HealthClient
	cc *grpc.ClientConn
}

func (c *conn) Close() error { return c.cc.Close() }

// WithTenant returns ctx with the tenant set in the outgoing metadata.
func WithTenant(ctx context.Context, tenantID string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "x-scope-orgid", tenantID)
}

// TokenFor hashes a trace onto the ring: FNV-1a over tenant and trace ID,
// as Tempo does, so a trace's spans always meet in the same ingesters.
func TokenFor(tenantID string, id []byte) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(tenantID))
	_, _ = h.Write(id)
	return h.Sum32()
}
