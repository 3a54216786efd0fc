package compactor

import (
	"context"
	"flag"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
)

// The compactor ring: every compactor joins it with ringNumTokens tokens,
// and a job, a tenant's index or its retention belongs to the one ACTIVE
// compactor owning the token its key hashes to (see doc.go).

const (
	// RingName and RingKey name the compactor ring and its KV key.
	RingName = "compactor"
	RingKey  = "compactor"

	ringNumTokens = 512
	// ringAutoForgetUnhealthyPeriods heartbeat timeouts after its last
	// heartbeat, a compactor that died without leaving is removed from the
	// ring by the others, so its share of the jobs moves on.
	ringAutoForgetUnhealthyPeriods = 2
)

// ringOp selects the owner of a key: the first ACTIVE instance clockwise,
// never extended to another one (replication factor 1).
var ringOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE}, nil)

// RingConfig is `compactor.ring`, Tempo's keys.
type RingConfig struct {
	KVStore          kv.Config     `yaml:"kvstore"`
	HeartbeatPeriod  time.Duration `yaml:"heartbeat_period"`
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout"`

	// WaitStabilityMinDuration > 0 makes a starting compactor wait until
	// the ring has not changed for that long (at most
	// WaitStabilityMaxDuration) before its first round.
	WaitStabilityMinDuration time.Duration `yaml:"wait_stability_min_duration"`
	WaitStabilityMaxDuration time.Duration `yaml:"wait_stability_max_duration"`

	InstanceID             string              `yaml:"instance_id"`
	InstanceInterfaceNames flagext.StringSlice `yaml:"instance_interface_names"`
	InstancePort           int                 `yaml:"instance_port"`
	InstanceAddr           string              `yaml:"instance_addr"`
	EnableInet6            bool                `yaml:"enable_inet6"`

	// WaitActiveInstanceTimeout bounds the wait for this compactor's own
	// ring entry to be ACTIVE at start-up.
	WaitActiveInstanceTimeout time.Duration `yaml:"wait_active_instance_timeout"`

	// ListenPort is the gRPC port the process listens on, the advertised
	// port when instance_port is 0 (set by the app).
	ListenPort int `yaml:"-"`
}

// RegisterFlagsAndApplyDefaults registers the flags under prefix (for
// example "compactor.ring.") and sets every field to its default: an
// in-process ring (inmemory), in which a single binary's one compactor
// owns everything.
func (c *RingConfig) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	hostname, _ := os.Hostname()
	c.KVStore.Store = "inmemory"
	c.KVStore.RegisterFlagsWithPrefix(prefix, "collectors/", f)
	f.DurationVar(&c.HeartbeatPeriod, prefix+"heartbeat-period", 15*time.Second, "Period between heartbeats to the compactor ring (0 disables them).")
	f.DurationVar(&c.HeartbeatTimeout, prefix+"heartbeat-timeout", time.Minute, "A compactor whose last heartbeat is older than this is unhealthy and owns nothing (0: never).")
	f.DurationVar(&c.WaitStabilityMinDuration, prefix+"wait-stability-min-duration", 0, "Minimum time the compactor ring must stay unchanged before a starting compactor begins (0: don't wait).")
	f.DurationVar(&c.WaitStabilityMaxDuration, prefix+"wait-stability-max-duration", 5*time.Minute, "Maximum wait for a stable compactor ring at start-up.")
	f.StringVar(&c.InstanceID, prefix+"instance-id", hostname, "This compactor's ID in the ring (default: the hostname).")
	c.InstanceInterfaceNames = []string{"eth0", "en0"}
	f.Var(&c.InstanceInterfaceNames, prefix+"instance-interface-names", "Network interfaces to read the advertised address from when instance_addr is unset.")
	f.IntVar(&c.InstancePort, prefix+"instance-port", 0, "Port advertised in the ring (0: the gRPC listen port).")
	f.StringVar(&c.InstanceAddr, prefix+"instance-addr", "", "Address advertised in the ring (empty: from instance_interface_names; 127.0.0.1 with the inmemory store).")
	f.BoolVar(&c.EnableInet6, prefix+"enable-inet6", false, "Allow an IPv6 advertised address.")
	f.DurationVar(&c.WaitActiveInstanceTimeout, prefix+"wait-active-instance-timeout", 10*time.Minute, "Timeout for this compactor to become ACTIVE in the ring at start-up.")
}

func (c *RingConfig) validate() error {
	if c.InstanceID == "" {
		return fmt.Errorf("compactor: ring.instance_id must be set (no hostname found)")
	}
	if c.HeartbeatTimeout < 0 || c.HeartbeatPeriod < 0 {
		return fmt.Errorf("compactor: ring heartbeat_period and heartbeat_timeout must not be negative")
	}
	return nil
}

// ringConfig is the dskit ring client's config.
func (c *RingConfig) ringConfig() ring.Config {
	var rc ring.Config
	rc.RegisterFlags(flag.NewFlagSet("", flag.ContinueOnError)) // dskit's defaults
	rc.KVStore = c.KVStore
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ReplicationFactor = 1
	rc.SubringCacheDisabled = true
	return rc
}

// lifecyclerConfig is the BasicLifecycler's config: the advertised address
// is instance_addr, else read from the interfaces, else (inmemory store,
// nobody else reads it) 127.0.0.1.
func (c *RingConfig) lifecyclerConfig(logger log.Logger) (ring.BasicLifecyclerConfig, error) {
	addr := c.InstanceAddr
	if addr == "" && c.KVStore.Store == "inmemory" {
		addr = "127.0.0.1"
	}
	addr, err := ring.GetInstanceAddr(addr, c.InstanceInterfaceNames, logger, c.EnableInet6)
	if err != nil {
		return ring.BasicLifecyclerConfig{}, fmt.Errorf("compactor ring address: %w", err)
	}
	port := ring.GetInstancePort(c.InstancePort, c.ListenPort)
	return ring.BasicLifecyclerConfig{
		ID:                  c.InstanceID,
		Addr:                net.JoinHostPort(addr, strconv.Itoa(port)),
		HeartbeatPeriod:     c.HeartbeatPeriod,
		HeartbeatTimeout:    c.HeartbeatTimeout,
		TokensObservePeriod: 0,
		NumTokens:           ringNumTokens,
	}, nil
}

// compactorRing is this compactor's lifecycler and its view of the ring.
type compactorRing struct {
	id         string
	ring       *ring.Ring
	lifecycler *ring.BasicLifecycler
}

func newCompactorRing(cfg RingConfig, logger log.Logger, reg prometheus.Registerer) (*compactorRing, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	store, err := kv.NewClient(cfg.KVStore, ring.GetCodec(), kv.RegistererWithKVName(reg, "compactor-lifecycler"), logger)
	if err != nil {
		return nil, fmt.Errorf("compactor ring KV: %w", err)
	}
	lc, err := cfg.lifecyclerConfig(logger)
	if err != nil {
		return nil, err
	}
	var delegate ring.BasicLifecyclerDelegate = ring.NewInstanceRegisterDelegate(ring.ACTIVE, ringNumTokens)
	delegate = ring.NewLeaveOnStoppingDelegate(delegate, logger)
	if cfg.HeartbeatTimeout > 0 {
		delegate = ring.NewAutoForgetDelegate(ringAutoForgetUnhealthyPeriods*cfg.HeartbeatTimeout, delegate, logger)
	}
	wrapped := prometheus.WrapRegistererWithPrefix("rubato_", reg)
	l, err := ring.NewBasicLifecycler(lc, RingName, RingKey, store, delegate, logger, wrapped)
	if err != nil {
		return nil, fmt.Errorf("compactor ring lifecycler: %w", err)
	}
	r, err := ring.NewWithStoreClientAndStrategy(cfg.ringConfig(), RingName, RingKey, store, ring.NewDefaultReplicationStrategy(), wrapped, logger)
	if err != nil {
		return nil, fmt.Errorf("compactor ring client: %w", err)
	}
	return &compactorRing{id: cfg.InstanceID, ring: r, lifecycler: l}, nil
}

// waitActive waits until this compactor is ACTIVE in its own view of the
// ring, then (when configured) until the ring is stable.
func (r *compactorRing) waitActive(ctx context.Context, cfg RingConfig, logger log.Logger) error {
	wctx := ctx
	if cfg.WaitActiveInstanceTimeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, cfg.WaitActiveInstanceTimeout)
		defer cancel()
	}
	if err := ring.WaitInstanceState(wctx, r.ring, r.id, ring.ACTIVE); err != nil {
		return fmt.Errorf("compactor %s not ACTIVE in the ring: %w", r.id, err)
	}
	if cfg.WaitStabilityMinDuration > 0 {
		level.Info(logger).Log("msg", "waiting for a stable compactor ring", "min", cfg.WaitStabilityMinDuration, "max", cfg.WaitStabilityMaxDuration)
		if err := ring.WaitRingStability(ctx, r.ring, ringOp, cfg.WaitStabilityMinDuration, cfg.WaitStabilityMaxDuration); err != nil {
			level.Warn(logger).Log("msg", "compactor ring not stable; starting anyway", "err", err)
		}
	}
	return nil
}

// owns reports whether this compactor is the ACTIVE owner of key's token.
// An error (no healthy owner, empty ring) means nobody may act on the key
// now.
func (r *compactorRing) owns(key string) (bool, error) {
	rs, err := r.ring.Get(ringToken(key), ringOp, nil, nil, nil)
	if err != nil {
		return false, err
	}
	return len(rs.Instances) == 1 && rs.Instances[0].Id == r.id, nil
}

// ringToken hashes a key into the ring's token space (FNV-1a, 32 bits).
func ringToken(key string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return h.Sum32()
}

// JobKey is the ring key of a compaction job: its tenant and the start of
// its compaction window. Every job of one (tenant, window) has one owner.
func JobKey(j Job) string {
	return j.Tenant + "\x00" + strconv.FormatInt(j.Window.UnixNano(), 10)
}

// TenantKey is the ring key of a tenant's index and retention.
func TenantKey(tenant string) string { return tenant }
