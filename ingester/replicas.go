package ingester

import (
	"context"
	"fmt"
	"time"

	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/ring"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rubatodb/rubato/ingester/client"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/tenant"
)

// Replicas is how an ingester reaches the other replicas of its traces: the
// ingester ring and the pool of ingester clients. Without it (the single
// binary, replication factor 1) nothing is ever held and nothing released.
type Replicas struct {
	Ring ring.ReadRing
	Pool *client.Pool
}

// UseReplicas lets the ingester release held fragments on the other
// replicas once it has flushed a block (held.go). Call before it starts.
func (ing *Ingester) UseReplicas(r Replicas) { ing.replicas = r }

// releaseOp finds a trace's replicas in any state, so a replica that is
// leaving or joining still hears of its held fragments.
var releaseOp = ring.NewOp([]ring.InstanceState{ring.ACTIVE, ring.LEAVING, ring.PENDING, ring.JOINING}, nil)

// releaseOnReplicas tells the other replicas of each key's trace that its
// fragment is in a block in the backend. Failures are logged and counted:
// a replica not told builds the fragment after hold_timeout, a duplicate
// that queries and compaction remove.
func (ing *Ingester) releaseOnReplicas(ctx context.Context, tenantID string, keys []heldKey) {
	if ing.replicas.Ring == nil || len(keys) == 0 {
		return
	}
	self := ing.lifecycler.Addr
	reqs := map[string]*rubatopb.HeldFragments{}
	var bufDescs [ring.GetBufferSize]ring.InstanceDesc
	var bufHosts, bufZones [ring.GetBufferSize]string
	var ringErrs int
	var ringErr error
	for _, k := range keys {
		rs, err := ing.replicas.Ring.Get(client.TokenFor(tenantID, k.id[:]), releaseOp, bufDescs[:0], bufHosts[:0], bufZones[:0])
		if err != nil {
			ringErrs, ringErr = ringErrs+1, err
			continue
		}
		for _, inst := range rs.Instances {
			if inst.Addr == self {
				continue
			}
			r := reqs[inst.Addr]
			if r == nil {
				r = &rubatopb.HeldFragments{}
				reqs[inst.Addr] = r
			}
			r.Ids = append(r.Ids, k.id[:])
			r.PushIDs = append(r.PushIDs, k.push)
		}
	}
	if ringErrs > 0 {
		ing.metrics.releases.WithLabelValues("failed").Add(float64(ringErrs))
		level.Warn(ing.logger).Log("msg", "release held fragments: no replica set; they are built after hold_timeout", "fragments", ringErrs, "err", ringErr)
	}
	ctx = client.WithTenant(ctx, tenantID)
	for addr, req := range reqs {
		// In batches, so a big block's release stays far below the
		// message size limit.
		for lo := 0; lo < len(req.Ids); lo += releaseBatch {
			hi := min(lo+releaseBatch, len(req.Ids))
			err := ing.releaseOn(ctx, addr, &rubatopb.HeldFragments{Ids: req.Ids[lo:hi], PushIDs: req.PushIDs[lo:hi]})
			result := "ok"
			if err != nil {
				result = "failed"
				level.Warn(ing.logger).Log("msg", "release held fragments on a replica; it will build them after hold_timeout", "replica", addr, "fragments", hi-lo, "err", err)
			}
			ing.metrics.releases.WithLabelValues(result).Add(float64(hi - lo))
		}
	}
}

// releaseBatch bounds the fragments of one ReleaseHeld call (about 30
// bytes each).
const releaseBatch = 50_000

func (ing *Ingester) releaseOn(ctx context.Context, addr string, req *rubatopb.HeldFragments) error {
	c, err := ing.replicas.Pool.Get(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = c.ReleaseHeld(ctx, req)
	return err
}

// ReleaseHeld forgets held fragments whose builder has flushed them.
func (ing *Ingester) ReleaseHeld(ctx context.Context, req *rubatopb.HeldFragments) (*rubatopb.HeldResponse, error) {
	return ing.changeHeld(ctx, req, recordRelease)
}

// PromoteHeld builds held fragments here: their builder failed the push.
func (ing *Ingester) PromoteHeld(ctx context.Context, req *rubatopb.HeldFragments) (*rubatopb.HeldResponse, error) {
	return ing.changeHeld(ctx, req, recordPromote)
}

// changeHeld writes a release or promote record of the pairs this
// ingester holds, then applies it.
func (ing *Ingester) changeHeld(ctx context.Context, req *rubatopb.HeldFragments, kind byte) (*rubatopb.HeldResponse, error) {
	if err := ing.checkReady(); err != nil {
		return nil, err
	}
	tenantID, err := tenant.Resolver{MultitenancyEnabled: true}.FromGRPC(ctx)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if len(req.Ids) != len(req.PushIDs) {
		return nil, status.Errorf(codes.InvalidArgument, "held fragments: %d ids, %d pushIDs", len(req.Ids), len(req.PushIDs))
	}
	keys := make([]heldKey, len(req.Ids))
	for k, id := range req.Ids {
		if len(id) != 16 {
			return nil, status.Errorf(codes.InvalidArgument, "held fragments: trace id of %d bytes, want 16", len(id))
		}
		copy(keys[k].id[:], id)
		keys[k].push = req.PushIDs[k]
	}
	ing.instancesMu.RLock()
	inst := ing.instances[tenantID]
	ing.instancesMu.RUnlock()
	if inst == nil {
		return &rubatopb.HeldResponse{}, nil
	}
	n, err := inst.changeHeld(keys, kind)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "ingester wal: %v", err)
	}
	if kind == recordRelease {
		ing.metrics.heldReleased.Add(float64(n))
	} else {
		ing.metrics.heldPromoted.WithLabelValues("asked").Add(float64(n))
	}
	return &rubatopb.HeldResponse{Matched: uint32(n)}, nil
}

// changeHeld records, then applies, a release or promote of the keys this
// instance holds; keys it does not hold are ignored.
func (i *instance) changeHeld(keys []heldKey, kind byte) (int, error) {
	i.mu.RLock()
	held := keys[:0:0]
	for _, k := range keys {
		for _, h := range i.held[k.id] {
			if h.names(k) {
				held = append(held, k)
				break
			}
		}
	}
	i.mu.RUnlock()
	if len(held) == 0 {
		return 0, nil
	}
	if _, err := i.ing.wal.append(appendHeldRecord(nil, kind, i.tenant, held)); err != nil {
		return 0, fmt.Errorf("append %s record: %w", map[byte]string{recordRelease: "release", recordPromote: "promote"}[kind], err)
	}
	now := i.ing.now().UnixNano()
	i.mu.Lock()
	defer i.mu.Unlock()
	defer func() { i.ing.metrics.heldFragments.WithLabelValues(i.tenant).Set(float64(i.heldCount)) }()
	if kind == recordRelease {
		return i.releaseHeldLocked(held, now, i.ing.cfg.CompleteBlockTimeout), nil
	}
	return i.promoteHeldLocked(held, now), nil
}

// promoteExpiredHeld builds here the held fragments whose builder has not
// released them within hold_timeout.
func (ing *Ingester) promoteExpiredHeld() {
	cutoff := ing.now().Add(-ing.cfg.holdTimeout()).UnixNano()
	for _, inst := range ing.instanceList() {
		inst.mu.RLock()
		ing.metrics.heldFragments.WithLabelValues(inst.tenant).Set(float64(inst.heldCount))
		inst.mu.RUnlock()
		keys := inst.expiredHeld(cutoff)
		if len(keys) == 0 {
			continue
		}
		n, err := inst.changeHeld(keys, recordPromote)
		if err != nil {
			level.Error(ing.logger).Log("msg", "promote held fragments past hold_timeout", "tenant", inst.tenant, "err", err)
			continue
		}
		ing.metrics.heldPromoted.WithLabelValues("timeout").Add(float64(n))
		level.Warn(ing.logger).Log("msg", "building held fragments no replica released within hold_timeout", "tenant", inst.tenant, "fragments", n)
	}
}
