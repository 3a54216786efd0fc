package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// soakSample is one row of soak.csv. Server figures are NaN while the
// server is down (a restart) or its /metrics did not answer.
type soakSample struct {
	t                     float64 // seconds since the soak started
	rss, heap, goroutines float64 // process_resident_memory_bytes, go_memstats_heap_inuse_bytes, go_goroutines
	fds                   float64 // process_open_fds
	walBytes              float64 // bytes under the WAL directory (segments and complete blocks not yet dropped)
	walSegments           float64 // bytes of WAL segments
	blocks, compacted     float64 // live and compacted blocks in the backend
	spans                 float64 // spans acknowledged so far (probe included)
	lookups, searches     float64
}

// soakSeries names the columns of soak.csv after t, in order.
var soakSeries = []struct {
	name, unit string
	get        func(*soakSample) float64
}{
	{"rss_bytes", "MB", func(s *soakSample) float64 { return s.rss }},
	{"heap_inuse_bytes", "MB", func(s *soakSample) float64 { return s.heap }},
	{"goroutines", "", func(s *soakSample) float64 { return s.goroutines }},
	{"open_fds", "", func(s *soakSample) float64 { return s.fds }},
	{"wal_bytes", "MB", func(s *soakSample) float64 { return s.walBytes }},
	{"wal_segment_bytes", "MB", func(s *soakSample) float64 { return s.walSegments }},
	{"backend_blocks", "", func(s *soakSample) float64 { return s.blocks }},
	{"compacted_blocks", "", func(s *soakSample) float64 { return s.compacted }},
	{"spans_acked", "M", func(s *soakSample) float64 { return s.spans }},
	{"lookups", "", func(s *soakSample) float64 { return s.lookups }},
	{"searches", "", func(s *soakSample) float64 { return s.searches }},
}

type sampler struct {
	s     *server
	dir   string
	st    *soakStats
	start time.Time

	mu   sync.Mutex
	down bool
	rows []soakSample
}

func (m *sampler) setDown(d bool) {
	m.mu.Lock()
	m.down = d
	m.mu.Unlock()
}

func (m *sampler) samples() []soakSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]soakSample(nil), m.rows...)
}

func (m *sampler) loop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		m.sample(client)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *sampler) sample(client *http.Client) {
	nan := math.NaN()
	row := soakSample{t: time.Since(m.start).Seconds(), rss: nan, heap: nan, goroutines: nan, fds: nan,
		spans: float64(m.st.spans.Load()), lookups: float64(m.st.lookups.Load()), searches: float64(m.st.searches.Load())}
	m.mu.Lock()
	down := m.down
	m.mu.Unlock()
	if !down {
		if v, err := scrape(client, m.s.url("/metrics"), "process_resident_memory_bytes", "go_memstats_heap_inuse_bytes", "go_goroutines", "process_open_fds"); err == nil {
			row.rss, row.heap, row.goroutines, row.fds = v[0], v[1], v[2], v[3]
		}
	}
	row.walBytes = float64(treeSize(filepath.Join(m.dir, "wal")))
	row.walSegments = float64(treeSize(filepath.Join(m.dir, "wal", "segments")))
	live, compacted := countBlocks(filepath.Join(m.dir, "blocks"))
	row.blocks, row.compacted = float64(live), float64(compacted)
	m.mu.Lock()
	m.rows = append(m.rows, row)
	m.mu.Unlock()
}

// scrape reads the unlabeled samples of names from a Prometheus text
// endpoint; a name not found is NaN.
func scrape(client *http.Client, url string, names ...string) ([]float64, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	out := make([]float64, len(names))
	for i := range out {
		out[i] = math.NaN()
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		for i, n := range names {
			if name == n {
				if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
					out[i] = v
				}
			}
		}
	}
	return out, sc.Err()
}

// treeSize sums file sizes under dir, skipping files that vanish while it
// walks (WAL segments are deleted as blocks are flushed).
func treeSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// countBlocks counts block directories (<tenant>/<uuid>) of the local
// backend: live ones have meta.json and no meta.compacted.json.
func countBlocks(root string) (live, compacted int) {
	tenants, _ := os.ReadDir(root)
	for _, t := range tenants {
		if !t.IsDir() {
			continue
		}
		blocks, _ := os.ReadDir(filepath.Join(root, t.Name())) // not a directory: nil
		for _, b := range blocks {
			d := filepath.Join(root, t.Name(), b.Name())
			if _, err := os.Stat(filepath.Join(d, "meta.compacted.json")); err == nil {
				compacted++
			} else if _, err := os.Stat(filepath.Join(d, "meta.json")); err == nil {
				live++
			}
		}
	}
	return live, compacted
}

func writeSamplesCSV(path string, rows []soakSample) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	head := []string{"t_seconds"}
	for _, s := range soakSeries {
		head = append(head, s.name)
	}
	_ = w.Write(head)
	for i := range rows {
		rec := []string{strconv.FormatFloat(rows[i].t, 'f', 1, 64)}
		for _, s := range soakSeries {
			v := s.get(&rows[i])
			if math.IsNaN(v) {
				rec = append(rec, "")
			} else {
				rec = append(rec, strconv.FormatFloat(v, 'f', -1, 64))
			}
		}
		_ = w.Write(rec)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// growthTolerance bounds one series: the maximum over the last third of
// the run may exceed the maximum over the middle third by rel (a fraction
// of it) plus abs, no more. Comparing maxima of thirds ignores the warm-up
// (first third) and sawtooths (WAL segments, GC cycles) that are as high
// in both thirds; a leak shows as a last third above the middle one.
type growthTolerance struct {
	series   string
	rel, abs float64
}

// soakTolerances are the soak's bounds. RSS and the WAL move with GC
// cycles and block cuts, so their slack is wider than that of the counts.
var soakTolerances = []growthTolerance{
	{series: "rss_bytes", rel: 0.25, abs: 32 << 20},
	{series: "goroutines", rel: 0.20, abs: 20},
	{series: "open_fds", rel: 0.20, abs: 10},
	{series: "wal_bytes", rel: 0.50, abs: 16 << 20},
	{series: "wal_segment_bytes", rel: 0.50, abs: 16 << 20},
}

// growthViolations returns one message per series whose last third's
// maximum exceeds its middle third's by more than the tolerance (thirds of
// the time span, NaN samples skipped). A series with no samples in either
// third is a violation too: it was not measured.
func growthViolations(rows []soakSample, tols []growthTolerance) []string {
	if len(rows) == 0 {
		return []string{"no samples"}
	}
	t0, t1 := rows[0].t, rows[len(rows)-1].t
	third := (t1 - t0) / 3
	var out []string
	for _, tol := range tols {
		get := seriesGetter(tol.series)
		if get == nil {
			out = append(out, fmt.Sprintf("%s: unknown series", tol.series))
			continue
		}
		mid, last := math.NaN(), math.NaN()
		for i := range rows {
			v := get(&rows[i])
			if math.IsNaN(v) {
				continue
			}
			switch {
			case rows[i].t >= t0+2*third:
				last = nanMax(last, v)
			case rows[i].t >= t0+third:
				mid = nanMax(mid, v)
			}
		}
		if math.IsNaN(mid) || math.IsNaN(last) {
			out = append(out, fmt.Sprintf("%s: no samples in the middle or last third", tol.series))
			continue
		}
		if limit := mid*(1+tol.rel) + tol.abs; last > limit {
			out = append(out, fmt.Sprintf("%s grew: last-third max %.0f > middle-third max %.0f × %.2f + %.0f = %.0f", tol.series, last, mid, 1+tol.rel, tol.abs, limit))
		}
	}
	return out
}

func seriesGetter(name string) func(*soakSample) float64 {
	for _, s := range soakSeries {
		if s.name == name {
			return s.get
		}
	}
	return nil
}

func nanMax(a, b float64) float64 {
	if math.IsNaN(a) || b > a {
		return b
	}
	return a
}

// printSeriesSummary prints start, end, min and max of each series, and
// the middle- and last-third maxima the growth check compares.
func printSeriesSummary(rows []soakSample) {
	if len(rows) == 0 {
		return
	}
	t0, t1 := rows[0].t, rows[len(rows)-1].t
	third := (t1 - t0) / 3
	for _, s := range soakSeries {
		first, last, lo, hi, mid, end := math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN()
		for i := range rows {
			v := s.get(&rows[i])
			if math.IsNaN(v) {
				continue
			}
			if math.IsNaN(first) {
				first = v
			}
			last = v
			hi = nanMax(hi, v)
			if math.IsNaN(lo) || v < lo {
				lo = v
			}
			switch {
			case rows[i].t >= t0+2*third:
				end = nanMax(end, v)
			case rows[i].t >= t0+third:
				mid = nanMax(mid, v)
			}
		}
		fmt.Printf("series:   %-18s start %-12s end %-12s min %-12s max %-12s max middle third %-12s max last third %s\n",
			s.name, fmtVal(first, s.unit), fmtVal(last, s.unit), fmtVal(lo, s.unit), fmtVal(hi, s.unit), fmtVal(mid, s.unit), fmtVal(end, s.unit))
	}
}

func fmtVal(v float64, unit string) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case unit == "MB":
		return fmt.Sprintf("%.1fMB", v/1e6)
	case unit == "M":
		return fmt.Sprintf("%.2fM", v/1e6)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
