package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// searchCase is one search measured by -searches: a TraceQL query through
// GET /api/search, or a tag-values call.
type searchCase struct {
	name  string
	path  string
	want  func(body []byte) (int, uint64, error) // results, inspected bytes
	limit int
}

func searchCases() []searchCase {
	srch := func(q string, limit int) string {
		return "/api/search?limit=" + fmt.Sprint(limit) + "&spss=3&q=" + url.QueryEscape(q)
	}
	decodeSearch := func(b []byte) (int, uint64, error) {
		var r rubatopb.SearchResponse
		if err := protojson.Unmarshal(b, &r); err != nil {
			return 0, 0, err
		}
		return len(r.Traces), r.Metrics.GetInspectedBytes(), nil
	}
	decodeValues := func(b []byte) (int, uint64, error) {
		var r rubatopb.SearchTagValuesV2Response
		if err := protojson.Unmarshal(b, &r); err != nil {
			return 0, 0, err
		}
		return len(r.TagValues), r.Metrics.GetInspectedBytes(), nil
	}
	return []searchCase{
		// On the realistic profile (the default): payments' failed HTTP
		// spans, about 0.3 % of all spans; the simple profile has none.
		{name: "(a) selective, limit 20", path: srch(`{ resource.service.name = "payments" && span.http.response.status_code = 503 }`, 20), want: decodeSearch, limit: 20},
		{name: "(b) nothing, dedicated column", path: srch(`{ resource.service.name = "no-such-service" }`, 20), want: decodeSearch},
		{name: "(c) nothing, generic span attribute", path: srch(`{ span.db.system = "mysql" }`, 20), want: decodeSearch},
		{name: "(d) structural, limit 20", path: srch(`{ kind = server && resource.service.name = "checkout" } > { span.db.system = "postgresql" }`, 20), want: decodeSearch, limit: 20},
		{name: "(e) tag values resource.service.name", path: "/api/v2/search/tag/resource.service.name/values", want: decodeValues},
		{name: "(e) tag values span.http.route", path: "/api/v2/search/tag/span.http.route/values", want: decodeValues},
	}
}

// searches runs every search case n times, one at a time, and prints p50,
// p99, the first (cold) latency, results, and inspected bytes and backend
// GETs per query.
func searches(ctx context.Context, s *server, n int) error {
	client := &http.Client{}
	for _, c := range searchCases() {
		gets0, _ := s.metric("rubato_backend_requests_total", `op="get_range"`)
		gets0b, _ := s.metric("rubato_backend_requests_total", `op="get"`)
		read0, err := s.readBytes()
		if err != nil {
			return err
		}
		cpu0, _ := s.cpuSeconds()
		lat := make([]time.Duration, 0, n)
		var results int
		var inspected uint64
		for i := 0; i < n; i++ {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url(c.path), nil)
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			lat = append(lat, time.Since(t0))
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s: %s", c.name, resp.Status, body)
			}
			r, ib, err := c.want(body)
			if err != nil {
				return fmt.Errorf("%s: decode: %w", c.name, err)
			}
			results, inspected = r, inspected+ib
		}
		read1, _ := s.readBytes()
		cpu1, _ := s.cpuSeconds()
		gets1, _ := s.metric("rubato_backend_requests_total", `op="get_range"`)
		gets1b, _ := s.metric("rubato_backend_requests_total", `op="get"`)
		cold := lat[0]
		slices.Sort(lat)
		pct := func(p float64) time.Duration {
			return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(10 * time.Microsecond)
		}
		fmt.Printf("search:   %-38s p50 %-9s p99 %-9s first %-9s results %-3d read %.0f KB/query (reported %.0f KB), backend GETs %.1f/query, server CPU %.1f ms/query\n",
			c.name, pct(0.5), pct(0.99), cold.Round(10*time.Microsecond), results,
			float64(read1-read0)/float64(n)/1e3, float64(inspected)/float64(n)/1e3, (gets1-gets0+gets1b-gets0b)/float64(n), (cpu1-cpu0)*1e3/float64(n))
	}
	return nil
}

// readBytes is the bytes the server process read through read(2)-family
// calls so far (/proc/<pid>/io rchar): block data from the local backend
// (page cache included), S3 responses, and the small HTTP requests.
func (s *server) readBytes() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no rchar in /proc/%d/io", s.cmd.Process.Pid)
}

// profileSearch writes a 5 s CPU profile of the server while case (a)
// runs back to back.
func profileSearch(ctx context.Context, s *server, path string) error {
	done := make(chan error, 1)
	go func() { done <- profile(s, path, 5) }()
	c := searchCases()[0]
	client := &http.Client{}
	n := 0
	for t0 := time.Now(); time.Since(t0) < 5*time.Second; n++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url(c.path), nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	fmt.Printf("profile:  %s while case %s ran %d times\n", path, c.name, n)
	return <-done
}
