package main

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/querier"
	"github.com/rubatodb/rubato/querier/frontend"
)

// tenantLoad is one tenant's backlog: Jobs enqueued at once after Arrive
// dequeues have happened.
type tenantLoad struct {
	Name   string
	Jobs   int
	Arrive int
}

// tenantResult is what one tenant saw. Times are in job slots: with W
// workers running identical jobs of duration d, dequeue k starts at
// floor(k/W)·d, so a wait of 10 slots is 10·d.
type tenantResult struct {
	Name      string
	Jobs      int     // jobs offered
	Refused   int     // refused by max_outstanding_per_tenant (429)
	Share     float64 // share of dequeues while every tenant had jobs queued
	MeanWait  float64 // slots between enqueue and dequeue, mean
	P99Wait   float64
	LastStart int64 // slot at which its last job started
}

// simulateQueue drives the real frontend.Queue: it enqueues each tenant's
// backlog when its Arrive count of dequeues is reached, dequeues until the
// queue is empty, and times every job in slots of `workers` jobs. Tenants
// are enqueued in the order given.
func simulateQueue(loads []tenantLoad, maxPerTenant, workers int) ([]tenantResult, error) {
	q := frontend.NewQueue(maxPerTenant, nil)
	defer q.Close()
	type info struct {
		tenant  int
		enqueue int64 // slot
	}
	ctx := context.Background()
	res := make([]tenantResult, len(loads))
	waits := make([][]int64, len(loads))
	jobs := map[*frontend.Task]info{}
	pending := make([]int, len(loads)) // queued jobs per tenant
	contended := map[int]int{}         // dequeues per tenant while all had jobs
	contendedTotal := 0
	arrived := make([]bool, len(loads))
	queued := 0
	for k := 0; ; k++ {
		slot := int64(k / workers)
		for i, l := range loads {
			if arrived[i] || l.Arrive > k {
				continue
			}
			arrived[i] = true
			res[i].Name, res[i].Jobs = l.Name, l.Jobs
			for range l.Jobs {
				t := frontend.NewTask(ctx, l.Name, &rubatopb.QueryJob{})
				if err := q.Enqueue(t); err != nil {
					if !errors.Is(err, querier.ErrTooManyRequests) {
						return nil, err
					}
					res[i].Refused++
					continue
				}
				jobs[t] = info{i, slot}
				pending[i]++
				queued++
			}
		}
		if queued == 0 {
			if !slices.Contains(arrived, false) {
				break
			}
			continue // idle until the next tenant arrives
		}
		all := !slices.Contains(arrived, false) && !slices.Contains(pending, 0)
		t, err := q.Dequeue(ctx)
		if err != nil {
			return nil, err
		}
		in, ok := jobs[t]
		if !ok {
			return nil, fmt.Errorf("dequeued a job never enqueued")
		}
		delete(jobs, t)
		pending[in.tenant]--
		queued--
		if all {
			contended[in.tenant]++
			contendedTotal++
		}
		waits[in.tenant] = append(waits[in.tenant], slot-in.enqueue)
		res[in.tenant].LastStart = slot
	}
	for i := range res {
		if contendedTotal > 0 {
			res[i].Share = float64(contended[i]) / float64(contendedTotal)
		}
		res[i].MeanWait, res[i].P99Wait = meanP99(waits[i])
	}
	return res, nil
}

// fifoBaseline is the same arrivals served by one queue shared by every
// tenant (no per-tenant fairness), for comparison; it models the order
// only, it is not Rubato code.
// The per-tenant limit applies as in the real queue.
func fifoBaseline(loads []tenantLoad, maxPerTenant, workers int) []tenantResult {
	res := make([]tenantResult, len(loads))
	waits := make([][]int64, len(loads))
	type job struct {
		tenant  int
		enqueue int64
	}
	var fifo []job
	queued := make([]int, len(loads))
	arrived := make([]bool, len(loads))
	for k := 0; ; k++ {
		slot := int64(k / workers)
		for i, l := range loads {
			if !arrived[i] && l.Arrive <= k {
				arrived[i] = true
				res[i].Name, res[i].Jobs = l.Name, l.Jobs
				for range l.Jobs {
					if maxPerTenant > 0 && queued[i] >= maxPerTenant {
						res[i].Refused++
						continue
					}
					queued[i]++
					fifo = append(fifo, job{i, slot})
				}
			}
		}
		if len(fifo) == 0 {
			if !slices.Contains(arrived, false) {
				break
			}
			continue
		}
		j := fifo[0]
		fifo = fifo[1:]
		queued[j.tenant]--
		waits[j.tenant] = append(waits[j.tenant], slot-j.enqueue)
		res[j.tenant].LastStart = slot
	}
	for i := range res {
		res[i].MeanWait, res[i].P99Wait = meanP99(waits[i])
	}
	return res
}

func meanP99(v []int64) (mean, p99 float64) {
	if len(v) == 0 {
		return 0, 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	var sum int64
	for _, x := range s {
		sum += x
	}
	rank := (99*len(s)+99)/100 - 1
	return float64(sum) / float64(len(s)), float64(s[rank])
}
