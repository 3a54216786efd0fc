package main

import (
	"testing"

	"github.com/grafana/dskit/ring"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestImbalance(t *testing.T) {
	for _, tc := range []struct {
		name         string
		loads        []int64
		maxMean, p99 float64
	}{
		{"balanced", []int64{5, 5, 5, 5}, 1, 1},
		{"one hot", []int64{1, 1, 1, 5}, 2.5, 2.5},
		// 200 instances: nearest-rank p99 is the 198th value.
		{"p99 below max", append(append(make([]int64, 0, 200), repeat(1, 198)...), 1, 3), 3.0 / 1.01, 1 / 1.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			maxMean, p99 := imbalance(tc.loads)
			require.InDelta(t, tc.maxMean, maxMean, 1e-9)
			require.InDelta(t, tc.p99, p99, 1e-9)
		})
	}
}

func repeat(v int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestNewIn(t *testing.T) {
	require.Equal(t, 0, newIn([]int{0, 1, 2}, []int{2, 0, 1}))
	require.Equal(t, 1, newIn([]int{0, 1, 2}, []int{3, 0, 1}))
	require.Equal(t, 2, newIn([]int{0}, []int{1, 2}))
}

// toyRing places keys on instances 0,1,2 owning tokens 100, 200, 300, with
// instance 3 joining at 150 and instance 0 leaving. A key belongs to the
// first token above it, wrapping round.
func toyRing(t *testing.T, rf int) placement {
	t.Helper()
	toks := [][]uint32{{100}, {200}, {300}, {150}}
	base, err := newSimRing(descOf(toks[:3], -1), rf)
	require.NoError(t, err)
	t.Cleanup(base.Close)
	join, err := newSimRing(descOf(toks, -1), rf)
	require.NoError(t, err)
	t.Cleanup(join.Close)
	var leave *simRing
	if rf < 3 {
		leave, err = newSimRing(descOf(toks[:3], 0), rf)
		require.NoError(t, err)
		t.Cleanup(leave.Close)
	}
	p, err := place(base, join, leave, 4, func(yield func(uint32) bool) {
		for _, k := range []uint32{50, 120, 140, 160, 250, 350} {
			if !yield(k) {
				return
			}
		}
	})
	require.NoError(t, err)
	return p
}

func TestPlaceToyRing(t *testing.T) {
	t.Run("RF1", func(t *testing.T) {
		p := toyRing(t, 1)
		// 50, 350 → 0; 120, 140, 160 → 1; 250 → 2.
		require.Equal(t, []int64{2, 3, 1, 0}, p.Loads)
		require.EqualValues(t, 6, p.Copies)
		// Joining at 150 takes 120 and 140 from instance 1.
		require.EqualValues(t, 2, p.MovedJoin)
		// Instance 0 leaving hands 50 and 350 to instance 1.
		require.EqualValues(t, 2, p.MovedLeave)
	})
	t.Run("RF3", func(t *testing.T) {
		p := toyRing(t, 3)
		require.Equal(t, []int64{6, 6, 6, 0}, p.Loads)
		require.EqualValues(t, 18, p.Copies)
		// Only 160's replica set {1,2,0} stays whole; the five others each
		// gain instance 3 in place of one old replica.
		require.EqualValues(t, 5, p.MovedJoin)
		require.Zero(t, p.MovedLeave)
	})
}

func TestTokensOfAreDistinct(t *testing.T) {
	toks := tokensOf(ring.NewRandomTokenGeneratorWithSeed(1), 10, 128, nil)
	seen := map[uint32]bool{}
	for _, ts := range toks {
		require.Len(t, ts, 128)
		for _, v := range ts {
			require.False(t, seen[v], "token %d given twice", v)
			seen[v] = true
		}
	}
}

func TestQueueRoundRobin(t *testing.T) {
	loads := []tenantLoad{{Name: "big", Jobs: 10}, {Name: "small", Jobs: 2}}
	res, err := simulateQueue(loads, 0, 1)
	require.NoError(t, err)
	// Order: big, small, big, small, big × 8.
	require.InDelta(t, 0.5, res[0].Share, 1e-9)
	require.InDelta(t, 0.5, res[1].Share, 1e-9)
	require.InDelta(t, 2, res[1].MeanWait, 1e-9) // dequeued in slots 1 and 3
	require.EqualValues(t, 3, res[1].LastStart)
	require.EqualValues(t, 11, res[0].LastStart)

	fifo := fifoBaseline(loads, 0, 1)
	require.InDelta(t, 10.5, fifo[1].MeanWait, 1e-9) // behind the whole big backlog
	require.EqualValues(t, 11, fifo[1].LastStart)
}

func TestQueueLimitRefuses(t *testing.T) {
	loads := []tenantLoad{{Name: "big", Jobs: 10}, {Name: "small", Jobs: 2, Arrive: 1}}
	res, err := simulateQueue(loads, 3, 2)
	require.NoError(t, err)
	require.Equal(t, 7, res[0].Refused)
	require.Zero(t, res[1].Refused)
	// Dequeue 0 (slot 0) is big's; small arrives at dequeue 1 (slot 0) and
	// is served at dequeues 2 and 4 (slots 1 and 2): waits 1 and 2.
	require.InDelta(t, 1.5, res[1].MeanWait, 1e-9)
	require.Equal(t, 7, fifoBaseline(loads, 3, 2)[0].Refused)
}
