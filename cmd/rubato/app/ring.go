package app

import (
	"context"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strconv"

	"github.com/grafana/dskit/dns"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/codec"
	"github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rubatodb/rubato/ingester/client"
)

// The cluster plumbing: the memberlist KV every ring may gossip over, the
// ingester ring client with its client pool, and the address an ingester
// advertises in the ring.

const (
	modMemberlistKV = "memberlist-kv"
	modIngesterRing = "ingester-ring"
)

// initMemberlistKV builds dskit's memberlist KV service. It joins the
// gossip cluster only when a ring's kvstore.store is memberlist (the KV is
// created on first use), so a single binary on inmemory never opens the
// gossip port.
func (a *App) initMemberlistKV() (services.Service, error) {
	cfg := &a.cfg.MemberlistKV
	cfg.MetricsNamespace = "rubato"
	cfg.Codecs = []codec.Codec{ring.GetCodec()}
	// join_members may name dns+host:port (A/AAAA) or dnssrv+ (SRV)
	// records, resolved by dskit's DNS provider at every (re)join.
	provider := dns.NewProvider(dns.GolangResolverType, 0, a.logger, prometheus.WrapRegistererWithPrefix("rubato_memberlist_", a.reg))
	a.memberlistKV = memberlist.NewKVInitService(cfg, a.logger, provider, a.reg)
	a.useMemberlist(&a.cfg.Ingester.LifecyclerConfig.RingConfig.KVStore)
	return a.memberlistKV, nil
}

// useMemberlist points a ring's KV config at the process's memberlist KV;
// every ring the process reads or joins goes through it, so that
// kvstore.store: memberlist works for each.
func (a *App) useMemberlist(c *kv.Config) {
	c.MemberlistKV = a.memberlistKV.GetMemberlistKV
}

// initIngesterRing builds the ingester ring client and the pool of
// ingester clients shared by the distributor and the querier of the
// process; the pool drops clients of ingesters that left the ring.
func (a *App) initIngesterRing() (services.Service, error) {
	r, err := ring.New(a.cfg.Ingester.LifecyclerConfig.RingConfig, client.RingName, client.RingKey, a.logger, prometheus.WrapRegistererWithPrefix("rubato_", a.reg))
	if err != nil {
		return nil, fmt.Errorf("ingester ring client: %w", err)
	}
	a.ingesterRing = r
	a.pool = client.NewPool(a.cfg.IngesterClient.PoolConfig, r, a.logger, a.reg)
	m, err := services.NewManager(r, a.pool)
	if err != nil {
		return nil, err
	}
	return managerService(m, "ingester ring"), nil
}

// managerService runs a manager's services as one service, failing when
// any of them fails.
func managerService(m *services.Manager, name string) services.Service {
	w := services.NewFailureWatcher()
	w.WatchManager(m)
	return services.NewBasicService(func(ctx context.Context) error {
		return services.StartManagerAndAwaitHealthy(ctx, m)
	}, func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return nil
		case err := <-w.Chan():
			return fmt.Errorf("%s: %w", name, err)
		}
	}, func(error) error {
		return services.StopManagerAndAwaitStopped(context.Background(), m)
	}).WithName(name)
}

// lifecyclerConfig is the ingester's lifecycler config as the process
// runs it: the port it advertises is lifecycler.port when set, else the
// gRPC port actually listened on; the address is lifecycler.address when
// set, else the gRPC listen address when it names one host, else 127.0.0.1
// for the in-process ring of a single binary (nobody else reads it), else
// empty, for dskit to detect from interface_names as Tempo does.
func (a *App) lifecyclerConfig() ring.LifecyclerConfig {
	lc := a.cfg.Ingester.LifecyclerConfig
	lc.ListenPort = a.cfg.Server.GRPCListenPort
	if a.grpcLis != nil {
		if _, p, err := net.SplitHostPort(a.grpcLis.Addr().String()); err == nil {
			lc.ListenPort, _ = strconv.Atoi(p)
		}
	}
	if lc.Addr == "" {
		lc.Addr = advertiseAddr(a.cfg.Server.GRPCListenAddress, lc.RingConfig.KVStore.Store)
	}
	return lc
}

// advertiseAddr is the ingester's ring address when none is configured
// (see lifecyclerConfig); "" lets dskit choose.
func advertiseAddr(grpcListen, store string) string {
	if ip := net.ParseIP(grpcListen); ip != nil && !ip.IsUnspecified() {
		return grpcListen
	}
	if store == "inmemory" {
		return "127.0.0.1"
	}
	return ""
}

// memberlistPage serves /memberlist: dskit's status of the gossip
// cluster (JSON with Accept: application/json), or a line saying this
// process does not gossip.
func (a *App) memberlistPage() http.Handler {
	return memberlist.NewHTTPStatusHandler(a.memberlistKV, memberlistTemplate)
}

// memberlistTemplate renders dskit's memberlist.StatusPageData (dskit
// keeps its own page template unexported).
var memberlistTemplate = template.Must(template.New("memberlist").Parse(`<!DOCTYPE html>
<html><head><title>Rubato memberlist</title></head><body>
<h1>Memberlist cluster</h1>
<p>Generated at {{ .Now }}; {{ len .SortedMembers }} members; KV store {{ .TotalStoreSize }} bytes.</p>
<h2>Members</h2>
<table border="1"><tr><th>Name</th><th>Address</th><th>State</th></tr>
{{ range .SortedMembers }}<tr><td>{{ .Name }}</td><td>{{ .Address }}</td><td>{{ .State }}</td></tr>
{{ end }}</table>
<h2>KV store</h2>
<table border="1"><tr><th>Key</th><th>Version</th><th>Bytes</th></tr>
{{ range $k, $v := .Store }}<tr><td>{{ $k }}</td><td>{{ $v.Version }}</td><td>{{ index $.StoreSizes $k }}</td></tr>
{{ end }}</table>
</body></html>
`))
