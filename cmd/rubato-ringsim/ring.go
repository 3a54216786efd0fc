package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
)

// ringKey is the KV key the simulated rings live under; one in-memory KV
// store per ring, so the name never clashes.
const ringKey = "ring"

// tokensOf generates the tokens of n instances the way dskit's lifecycler
// does when Rubato leaves RingTokenGenerator unset: a RandomTokenGenerator,
// each instance seeing the tokens taken before it.
func tokensOf(gen ring.TokenGenerator, n, perInstance int, taken []uint32) [][]uint32 {
	out := make([][]uint32, n)
	for i := range out {
		out[i] = gen.GenerateTokens(perInstance, taken)
		taken = append(taken, out[i]...)
	}
	return out
}

// instanceID names instance i; ids() maps the names back to indexes.
func instanceID(i int) string { return fmt.Sprintf("instance-%03d", i) }

// descOf returns a ring of ACTIVE instances owning tokens[i], skipping the
// indexes in skip (an instance that left).
func descOf(tokens [][]uint32, skip int) *ring.Desc {
	d := ring.NewDesc()
	now := time.Now()
	for i, t := range tokens {
		if i == skip {
			continue
		}
		d.AddIngester(instanceID(i), fmt.Sprintf("10.0.0.%d:9095", i), "", t, ring.ACTIVE, now, false, time.Time{}, nil)
	}
	return d
}

// simRing is a real dskit ring.Ring reading desc from an in-memory KV
// store: the same Get, token search and replication strategy the
// distributor's ring.DoBatch uses.
type simRing struct {
	*ring.Ring
	closer func()
}

func newSimRing(desc *ring.Desc, rf int) (*simRing, error) {
	kv, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	ctx := context.Background()
	if err := kv.CAS(ctx, ringKey, func(any) (any, bool, error) { return desc, true, nil }); err != nil {
		_ = closer.Close()
		return nil, fmt.Errorf("store ring: %w", err)
	}
	var cfg ring.Config
	cfg.KVStore.Mock = kv
	cfg.HeartbeatTimeout = 24 * time.Hour // every instance is healthy
	cfg.ReplicationFactor = rf
	cfg.SubringCacheDisabled = true
	r, err := ring.New(cfg, "sim", ringKey, log.NewNopLogger(), nil)
	if err != nil {
		_ = closer.Close()
		return nil, fmt.Errorf("new ring: %w", err)
	}
	if err := services.StartAndAwaitRunning(ctx, r); err != nil {
		_ = closer.Close()
		return nil, fmt.Errorf("start ring: %w", err)
	}
	return &simRing{Ring: r, closer: func() {
		_ = services.StopAndAwaitTerminated(context.Background(), r)
		_ = closer.Close()
	}}, nil
}

func (r *simRing) Close() {
	if r != nil {
		r.closer()
	}
}

// placement is what one pass of keys over a base ring (and optionally the
// same ring with one instance joined, and with one left) measured.
type placement struct {
	Loads      []int64 // copies held per base instance
	Copies     int64   // copies placed on the base ring (keys × replicas)
	MovedJoin  int64   // copies on the joined ring that the base ring did not hold there
	MovedLeave int64   // copies on the left ring that the base ring did not hold there
}

// place puts every key of keys through Get(key, ring.WriteNoExtend) on base,
// and on join and leave when not nil, and counts the copies per instance and
// the copies that change instance. Instance ids are instanceID(i) with
// i < n (n counts the joined instance too).
func place(base, join, leave *simRing, n int, keys func(yield func(uint32) bool)) (placement, error) {
	ids := make(map[string]int, n)
	for i := range n {
		ids[instanceID(i)] = i
	}
	p := placement{Loads: make([]int64, n)}
	var (
		bufDescs [8]ring.InstanceDesc
		bufHosts [8]string
		old, cur []int
		err      error
		op       = ring.WriteNoExtend
		setOf    = func(r *simRing, key uint32, dst []int) ([]int, error) {
			rs, err := r.Get(key, op, bufDescs[:0], bufHosts[:0], nil)
			if err != nil {
				return dst, err
			}
			dst = dst[:0]
			for _, in := range rs.Instances {
				dst = append(dst, ids[in.Id])
			}
			return dst, nil
		}
	)
	keys(func(key uint32) bool {
		if old, err = setOf(base, key, old); err != nil {
			return false
		}
		p.Copies += int64(len(old))
		for _, i := range old {
			p.Loads[i]++
		}
		if join != nil {
			if cur, err = setOf(join, key, cur); err != nil {
				return false
			}
			p.MovedJoin += int64(newIn(old, cur))
		}
		if leave != nil {
			if cur, err = setOf(leave, key, cur); err != nil {
				return false
			}
			p.MovedLeave += int64(newIn(old, cur))
		}
		return true
	})
	return p, err
}

// newIn counts the members of cur that are not in old: the copies a key
// must stream to instances that did not hold it.
func newIn(old, cur []int) int {
	n := 0
	for _, c := range cur {
		if !slices.Contains(old, c) {
			n++
		}
	}
	return n
}

// imbalance returns max/mean and p99/mean of loads (nearest-rank p99 over
// the instances); a perfectly balanced assignment gives 1 and 1.
func imbalance(loads []int64) (maxMean, p99Mean float64) {
	if len(loads) == 0 {
		return math.NaN(), math.NaN()
	}
	s := slices.Clone(loads)
	slices.Sort(s)
	var sum int64
	for _, v := range s {
		sum += v
	}
	mean := float64(sum) / float64(len(s))
	if mean == 0 {
		return math.NaN(), math.NaN()
	}
	rank := int(math.Ceil(0.99*float64(len(s)))) - 1
	return float64(s[len(s)-1]) / mean, float64(s[rank]) / mean
}
