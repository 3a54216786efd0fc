package ingester

import (
	"context"
	"time"

	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/ring"
)

// The ring side of an ingester's life. dskit's Lifecycler moves the
// ingester's ring entry PENDING → ACTIVE once the WAL is replayed (or
// JOINING → ACTIVE after observe_period), heartbeats it every
// heartbeat_period, and on a clean stop sets it LEAVING, calls
// leaveFlusher (below), and removes it (unregister_on_shutdown).

// leaveFlusher is the lifecycler's FlushTransferer. It runs while the
// entry is LEAVING, after the ingester's loop has ended (pushes are
// refused from then on), so it does the work of a /flush itself.
type leaveFlusher struct{ ing *Ingester }

var _ ring.FlushTransferer = leaveFlusher{}

// Flush uploads everything held, once (flush_all_on_shutdown): blocks
// whose upload fails stay in the WAL for the next start.
func (f leaveFlusher) Flush() {
	ing := f.ing
	level.Info(ing.logger).Log("msg", "leaving the ring: uploading every trace held")
	ctx := context.Background()
	ing.tick(ctx, true)
	ing.flushWG.Wait()
	ing.tick(ctx, false) // truncate the WAL after the uploads
}

// TransferOut is not supported: data moves through the backend.
func (leaveFlusher) TransferOut(context.Context) error { return ring.ErrTransferDisabled }

// forgetDead removes from the ring every other instance whose last
// heartbeat is older than auto_forget_unhealthy_periods heartbeat
// timeouts, as dskit's AutoForgetDelegate does for a BasicLifecycler: an
// ingester killed for good would otherwise stay in the ring, unhealthy,
// and keep counting as a replica that every write and read must do
// without.
func (ing *Ingester) forgetDead(ctx context.Context) {
	lc := ing.lifecycler
	period := time.Duration(ing.cfg.AutoForgetUnhealthyPeriods) * ing.cfg.LifecyclerConfig.HeartbeatTimeout
	if period <= 0 {
		return
	}
	now := ing.now()
	err := lc.KVStore.CAS(ctx, lc.RingKey, func(in any) (any, bool, error) {
		desc, ok := in.(*ring.Desc)
		if !ok || desc == nil {
			return nil, false, nil
		}
		forgot := false
		for id, inst := range desc.Ingesters {
			last := time.Unix(inst.GetTimestamp(), 0)
			if id == lc.ID || now.Sub(last) <= period {
				continue
			}
			level.Warn(ing.logger).Log("msg", "auto-forgetting instance from the ring: no heartbeat for a long time", "instance", id, "last_heartbeat", last, "forget_period", period)
			desc.RemoveIngester(id)
			forgot = true
		}
		if !forgot {
			return nil, false, nil
		}
		return desc, true, nil
	})
	if err != nil {
		level.Warn(ing.logger).Log("msg", "auto-forget of dead ring instances", "err", err)
	}
}
