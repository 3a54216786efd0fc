package distributor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/ring"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rubatodb/rubato/pkg/model/otlpwire"
	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// Builder and holders (build_on_one_replica): the builder of a fragment is
// the first instance of the replication set ring.Get returns for its key;
// the other replicas of the set receive it with hold set. This file finds
// the builders during ring.DoBatch and, after the quorum, makes sure every
// accepted fragment is in the WAL of a replica that builds it.

// newPushID returns a random nonzero push ID: with the trace ID it names a
// fragment on every replica it was sent to (ReleaseHeld, PromoteHeld).
func newPushID() uint64 {
	for {
		if id := rand.Uint64(); id != 0 {
			return id
		}
	}
}

// replicaCall is one DoBatch callback, the push to one replica: done is
// closed when it returns, err is its result (read only after done).
type replicaCall struct {
	done chan struct{}
	err  error
}

// replicaRecorder wraps the ring for one ring.DoBatch and records each
// key's replication set. DoBatch calls Get once per key, in key order, on
// the caller's goroutine, before it starts any callback (dskit
// ring/batch.go), so the n-th Get is key n's set, and what Get writes is
// visible to every callback (the go statement orders them) without a lock.
type replicaRecorder struct {
	ring.DoBatchRing
	// addrs holds the replica addresses of every key, in replication-set
	// order, key after key: key i's are addrs[start[i]:start[i+1]], and
	// addrs[start[i]] is its builder.
	addrs []string
	start []int32
	// calls has one entry per replica address of the batch, made in Get
	// and filled by the callback of that address.
	calls map[string]*replicaCall
}

func newReplicaRecorder(r ring.DoBatchRing, keys int) *replicaRecorder {
	rf := r.ReplicationFactor()
	start := make([]int32, 1, keys+1)
	return &replicaRecorder{
		DoBatchRing: r,
		addrs:       make([]string, 0, keys*rf),
		start:       start,
		calls:       make(map[string]*replicaCall, rf),
	}
}

// Get implements ring.DoBatchRing.
func (r *replicaRecorder) Get(key uint32, op ring.Operation, bufDescs []ring.InstanceDesc, bufHosts, bufZones []string) (ring.ReplicationSet, error) {
	rs, err := r.DoBatchRing.Get(key, op, bufDescs, bufHosts, bufZones)
	if err != nil {
		return rs, err
	}
	for _, inst := range rs.Instances {
		r.addrs = append(r.addrs, inst.Addr)
		if r.calls[inst.Addr] == nil {
			r.calls[inst.Addr] = &replicaCall{done: make(chan struct{})}
		}
	}
	r.start = append(r.start, int32(len(r.addrs)))
	return rs, nil
}

// replicas returns key i's replication set, builder first.
func (r *replicaRecorder) replicas(i int) []string {
	return r.addrs[r.start[i]:r.start[i+1]]
}

// builder returns key i's builder ("" if its set was empty).
func (r *replicaRecorder) builder(i int) string {
	if reps := r.replicas(i); len(reps) > 0 {
		return reps[0]
	}
	return ""
}

// finished records the result of the push to addr.
func (r *replicaRecorder) finished(addr string, err error) {
	if c := r.calls[addr]; c != nil {
		c.err = err
		close(c.done)
	}
}

// succeeded reports whether the push to addr has returned without error.
func (r *replicaRecorder) succeeded(addr string) bool {
	c := r.calls[addr]
	if c == nil {
		return false
	}
	select {
	case <-c.done:
		return c.err == nil
	default:
		return false
	}
}

// minBuilderWait is the least ensureBuilt waits for a builder after the
// quorum; it waits twice as long as the quorum took if that is longer.
// A builder slower than that (a partitioned or stalled ingester the ring
// still counts healthy) costs a write this much latency, not the whole
// push timeout: its fragments are promoted on a holder, and if the builder
// answers after all, the trace is built twice, which queries and
// compaction deduplicate.
const minBuilderWait = 100 * time.Millisecond

// ensureBuilt runs after DoBatch reached its quorum, which took quorum. It
// waits for the pushes to the builders of frags, until pushCtx ends or for
// at most max(2 × quorum, minBuilderWait), then promotes the accepted
// fragments whose builder failed (or had not answered) on a replica that
// holds them. refused(i) reports fragments a replica refused: they are not
// acknowledged, so not promoted, and the replicas holding them are told to
// forget them. It returns Unavailable if a fragment could not be promoted
// anywhere.
func (d *Distributor) ensureBuilt(pushCtx context.Context, tenantID string, rec *replicaRecorder, frags []otlpwire.Fragment, pushID uint64, refused func(int) bool, quorum time.Duration) error {
	deadline := time.NewTimer(max(2*quorum, minBuilderWait))
	defer deadline.Stop()
	waited := make(map[string]bool, len(rec.calls))
wait:
	for i := range frags {
		b := rec.builder(i)
		if waited[b] {
			continue
		}
		waited[b] = true
		if c := rec.calls[b]; c != nil {
			select {
			case <-c.done:
			case <-pushCtx.Done():
				break wait
			case <-deadline.C:
				break wait
			}
		}
	}
	d.releaseRefused(pushCtx, tenantID, rec, frags, pushID, refused)
	// pushCtx also ends when every push has returned (DoBatch's cleanup
	// cancels it after the last callback), so succeeded, which checks done
	// again, tells a finished push from a timed-out one.
	var failed []int
	for i := range frags {
		if !rec.succeeded(rec.builder(i)) && !refused(i) {
			failed = append(failed, i)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return d.promote(pushCtx, tenantID, rec, frags, pushID, failed)
}

// promote asks, for each fragment of failed, the replicas that succeeded
// its push, in replication-set order after the builder, to build it
// (PromoteHeld), one call per replica for all the fragments it is asked
// for; a fragment whose replica failed the call moves on to the next.
//
// The calls run on their own context, detached from pushCtx (which has
// ended by now if the builder timed out) and bounded by the push timeout;
// it keeps pushCtx's values, the tenant's metadata among them.
func (d *Distributor) promote(pushCtx context.Context, tenantID string, rec *replicaRecorder, frags []otlpwire.Fragment, pushID uint64, failed []int) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(pushCtx), d.cfg.PushTimeout)
	defer cancel()
	next := make(map[int]int, len(failed)) // fragment -> position in its replicas to try next
	for _, i := range failed {
		next[i] = 1
	}
	pending := failed
	for len(pending) > 0 {
		groups := map[string][]int{}
		var order []string
		for _, i := range pending {
			reps := rec.replicas(i)
			p := next[i]
			for p < len(reps) && !rec.succeeded(reps[p]) {
				p++
			}
			if p >= len(reps) {
				level.Warn(d.logger).Log("msg", "fragment's builder failed and no replica holding it could be made to build it",
					"tenant", tenantID, "trace", fmt.Sprintf("%x", frags[i].ID[:]), "builder", reps[0])
				return status.Errorf(codes.Unavailable,
					"push to ingesters: the replica building trace %x failed and no replica holding it could build it", frags[i].ID[:])
			}
			next[i] = p + 1
			if groups[reps[p]] == nil {
				order = append(order, reps[p])
			}
			groups[reps[p]] = append(groups[reps[p]], i)
		}
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			retries []int
		)
		for _, addr := range order {
			idx := groups[addr]
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := d.promoteOn(ctx, addr, frags, pushID, idx); err != nil {
					level.Warn(d.logger).Log("msg", "promote held fragments failed", "tenant", tenantID, "ingester", addr, "fragments", len(idx), "err", err)
					mu.Lock()
					retries = append(retries, idx...)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		pending = retries
	}
	return nil
}

// releaseRefused tells the replicas holding fragments their builder
// refused (a limit) to forget them, so that no hold timeout builds what the
// client was told is refused. Best effort, in the background: a replica
// not told builds the fragment after its hold_timeout.
func (d *Distributor) releaseRefused(pushCtx context.Context, tenantID string, rec *replicaRecorder, frags []otlpwire.Fragment, pushID uint64, refused func(int) bool) {
	groups := map[string]*rubatopb.HeldFragments{}
	for i := range frags {
		if !refused(i) || !rec.succeeded(rec.builder(i)) {
			continue
		}
		for _, addr := range rec.replicas(i)[1:] {
			g := groups[addr]
			if g == nil {
				g = &rubatopb.HeldFragments{}
				groups[addr] = g
			}
			g.Ids = append(g.Ids, frags[i].ID[:])
			g.PushIDs = append(g.PushIDs, pushID)
		}
	}
	if len(groups) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(pushCtx), d.cfg.PushTimeout)
	var wg sync.WaitGroup
	for addr, req := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := d.pool.Get(addr)
			if err == nil {
				_, err = c.ReleaseHeld(ctx, req)
			}
			if err != nil {
				level.Warn(d.logger).Log("msg", "release refused fragments on a replica holding them; it builds them after hold_timeout", "tenant", tenantID, "ingester", addr, "err", err)
			}
		}()
	}
	go func() {
		wg.Wait()
		cancel()
	}()
}

// promoteOn sends one PromoteHeld for the fragments idx to addr.
func (d *Distributor) promoteOn(ctx context.Context, addr string, frags []otlpwire.Fragment, pushID uint64, idx []int) error {
	c, err := d.pool.Get(addr)
	if err != nil {
		d.promotions.WithLabelValues("failed").Inc()
		return err
	}
	req := &rubatopb.HeldFragments{Ids: make([][]byte, len(idx)), PushIDs: make([]uint64, len(idx))}
	for j, i := range idx {
		req.Ids[j] = frags[i].ID[:]
		req.PushIDs[j] = pushID
	}
	resp, err := c.PromoteHeld(ctx, req)
	if err != nil {
		d.promotions.WithLabelValues("failed").Inc()
		return err
	}
	d.promotions.WithLabelValues("ok").Inc()
	if int(resp.GetMatched()) < len(idx) {
		// The replica answered the push, so it had the fragments; one it
		// no longer holds was released or promoted already (the ingester's
		// hold timeout). Worth seeing, not an error.
		level.Warn(d.logger).Log("msg", "replica held fewer fragments than promoted", "ingester", addr, "promoted", len(idx), "matched", resp.GetMatched())
	}
	return nil
}
