package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ingestUnderSearch measures issue 9's "search must not slow ingest":
// after the main run (backend blocks in place), it pushes the same number
// of requests in alternating rounds, each on a freshly restarted server,
// without and with a search load (the
// query cases of searchCases, one client, qps searches per second, each
// waiting for its answer; a search still running when the round ends is
// cut off and not counted). A round ends with a synchronous /flush, so its
// rate is of spans built into blocks in the backend, what the ingester
// sustains; the rate of acknowledgements alone is printed beside it. It
// prints both per round and the median ratios of the pairs. Rounds
// alternate so that the machine's drift falls on both sides.
func ingestUnderSearch(ctx context.Context, cfg config, s *server, tp *template) error {
	const rounds = 3
	requests := max(cfg.searchLoadSpans/tp.spans, 1)
	var base, loaded, ackBase, ackLoaded []float64
	var searched, searchFails int64
	var searchCPU float64
	for r := 0; r < 2*rounds; r++ {
		withLoad := r%2 == 1
		// Every round starts from a restarted server: a round without
		// searches then pays nothing the searches of the round before
		// set going (pushes summarise their parts for 10 minutes after a
		// search; caches; blocks kept on the ingester), as on a server
		// nobody searches.
		if err := s.stop(); err != nil {
			return fmt.Errorf("stop: %w", err)
		}
		if err := s.start(); err != nil {
			return err
		}
		lctx, stop := context.WithCancel(ctx)
		var n, fails atomic.Int64
		var wg sync.WaitGroup
		if withLoad {
			wg.Add(1)
			go func() { defer wg.Done(); searchLoad(lctx, s, cfg.searchLoadQPS, &n, &fails) }()
		}
		prof := make(chan error, 1)
		prof <- nil
		if withLoad && r == 3 && cfg.searchLoadProfile != "" {
			<-prof
			go func() { prof <- profile(s, cfg.searchLoadProfile, 10) }()
		}
		cpu0, _ := s.cpuSeconds()
		t0 := time.Now()
		_, err := push(ctx, cfg, s, tp, requests)
		ack := time.Since(t0)
		if err == nil {
			// The round ends when its spans are in blocks in the backend:
			// an ingester acknowledges faster than it builds blocks, and
			// a rate of acknowledgements alone would leave the building
			// (and the searches' share of it) out.
			err = flush(s)
		}
		d := time.Since(t0)
		cpu1, _ := s.cpuSeconds()
		stop()
		wg.Wait()
		if err != nil {
			return err
		}
		if err := <-prof; err != nil {
			return fmt.Errorf("profile: %w", err)
		}
		rate := float64(requests*tp.spans) / d.Seconds()
		ackRate := float64(requests*tp.spans) / ack.Seconds()
		label := "no search"
		if withLoad {
			loaded = append(loaded, rate)
			ackLoaded = append(ackLoaded, ackRate)
			searched += n.Load()
			searchFails += fails.Load()
			label = fmt.Sprintf("%d searches", n.Load())
			searchCPU += cpu1 - cpu0
		} else {
			base = append(base, rate)
			ackBase = append(ackBase, ackRate)
			searchCPU -= cpu1 - cpu0
		}
		fmt.Printf("ingest+search: round %d, %-12s %8.0f spans/s into blocks (%d spans acknowledged in %s, %.0f spans/s; flushed after %s), server CPU %.2f s\n",
			r/2+1, label+":", rate, requests*tp.spans, ack.Round(time.Millisecond), ackRate, d.Round(time.Millisecond), cpu1-cpu0)
		var sm [4]float64
		for k, m := range []struct{ name, filter string }{
			{"rubato_ingester_search_summaries_built_total", `by="push"`},
			{"rubato_ingester_search_summaries_built_total", `by="search"`},
			{"rubato_ingester_search_summaries_not_cached_total", ""},
			{"rubato_ingester_search_summary_bytes", ""},
		} {
			sm[k], _ = s.metric(m.name, m.filter)
		}
		fmt.Printf("ingest+search:   search summaries so far: %.0f built by pushes, %.0f by searches, %.0f not cached; cache %.1f MB\n",
			sm[0], sm[1], sm[2], sm[3]/1e6)
	}
	ratios, ackRatios := pairRatios(loaded, base), pairRatios(ackLoaded, ackBase)
	fmt.Printf("ingest+search: with %.1f searches/s (%d searches, %d failed), ingest into blocks at %.1f%% of its rate without (median of %d pairs; pairs %.2f–%.2f); acknowledgements alone at %.1f%% (pairs %.2f–%.2f); server CPU per search ≈ %.1f ms\n",
		cfg.searchLoadQPS, searched, searchFails, 100*ratios[rounds/2], rounds, ratios[0], ratios[rounds-1],
		100*ackRatios[rounds/2], ackRatios[0], ackRatios[rounds-1], 1e3*searchCPU/float64(max(searched, 1)))
	return nil
}

// pairRatios is loaded[i]/base[i] for every pair, sorted.
func pairRatios(loaded, base []float64) []float64 {
	r := make([]float64, len(base))
	for i := range r {
		r[i] = loaded[i] / base[i]
	}
	slices.Sort(r)
	return r
}

// searchLoad runs the search cases in turn at qps until ctx ends,
// counting answered searches and failures.
func searchLoad(ctx context.Context, s *server, qps float64, n, fails *atomic.Int64) {
	cases := searchCases()
	tick := time.NewTicker(time.Duration(float64(time.Second) / qps))
	defer tick.Stop()
	client := &http.Client{}
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		c := cases[i%len(cases)]
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url(c.path), nil)
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				fails.Add(1)
			}
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ctx.Err() != nil {
			return // cut off by the end of the round
		}
		if err != nil || resp.StatusCode != http.StatusOK {
			fails.Add(1)
			continue
		}
		if _, _, err := c.want(body); err != nil {
			fails.Add(1)
			continue
		}
		n.Add(1)
	}
}
