package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// samplesOf builds one sample per second for n seconds with rss = f(t).
func samplesOf(n int, f func(t float64) float64) []soakSample {
	rows := make([]soakSample, n)
	for i := range rows {
		t := float64(i)
		rows[i] = soakSample{t: t, rss: f(t)}
	}
	return rows
}

func TestGrowthViolations(t *testing.T) {
	tol := []growthTolerance{{series: "rss_bytes", rel: 0.25, abs: 10}}
	for _, c := range []struct {
		name string
		f    func(t float64) float64
		fail bool
	}{
		{"flat", func(float64) float64 { return 1000 }, false},
		// A sawtooth as high in both thirds (GC cycles, WAL segments).
		{"sawtooth", func(t float64) float64 { return 500 + math.Mod(t, 37)*20 }, false},
		// Warm-up in the first third is not growth.
		{"warm-up", func(t float64) float64 { return math.Min(1000, 10*t) }, false},
		// Within the tolerance: last third 20 % above the middle.
		{"small rise", func(t float64) float64 { return 1000 + 200*math.Max(0, t-200)/100 }, false},
		{"linear leak", func(t float64) float64 { return 100 + 10*t }, true},
		{"late jump", func(t float64) float64 {
			if t > 250 {
				return 2000
			}
			return 1000
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := growthViolations(samplesOf(300, c.f), tol)
			if (len(got) > 0) != c.fail {
				t.Fatalf("violations %q, want failure %v", got, c.fail)
			}
		})
	}

	// Gaps (NaN: the server restarting) are skipped, not read as zero or
	// as growth.
	rows := samplesOf(300, func(t float64) float64 {
		if int(t)%100 < 10 {
			return math.NaN()
		}
		return 1000
	})
	if got := growthViolations(rows, tol); len(got) > 0 {
		t.Fatalf("gaps: %q", got)
	}
	// A series never measured in the last third fails: no evidence.
	rows = samplesOf(300, func(t float64) float64 {
		if t >= 200 {
			return math.NaN()
		}
		return 1000
	})
	if got := growthViolations(rows, tol); len(got) != 1 {
		t.Fatalf("unmeasured last third: %q, want one violation", got)
	}
	if got := growthViolations(nil, tol); len(got) != 1 {
		t.Fatalf("no samples: %q", got)
	}
}

func TestSoakTolerancesNameSeries(t *testing.T) {
	for _, tol := range soakTolerances {
		if seriesGetter(tol.series) == nil {
			t.Errorf("tolerance for unknown series %q", tol.series)
		}
	}
}

func TestSVGChart(t *testing.T) {
	nan := math.NaN()
	c := svgChart{
		title: `soak <&> "test"`,
		xs:    []float64{0, 60, 120, 180, 240},
		marks: []float64{120},
		panels: []svgPanel{
			{title: "memory", scale: 1e6, unit: "MB", lines: []svgLine{{"RSS", "#000", []float64{1e8, 2e8, nan, 2e8, 1.5e8}}}},
			{title: "empty", lines: []svgLine{{"none", "#111", []float64{nan, nan, nan, nan, nan}}}},
		},
	}
	var b bytes.Buffer
	if err := c.write(&b); err != nil {
		t.Fatal(err)
	}
	// Well-formed XML, title escaped.
	dec := xml.NewDecoder(bytes.NewReader(b.Bytes()))
	var paths []string
	marks := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, b.String())
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				if se.Name.Local == "path" && a.Name.Local == "d" {
					paths = append(paths, a.Value)
				}
				if se.Name.Local == "line" && a.Name.Local == "stroke" && a.Value == "#c00" {
					marks++
				}
			}
		}
	}
	if !strings.Contains(b.String(), "soak &lt;&amp;&gt; &#34;test&#34;") {
		t.Errorf("title not escaped:\n%s", b.String())
	}
	if len(paths) != 2 {
		t.Fatalf("paths %q, want one per line", paths)
	}
	// The NaN breaks the RSS line in two: two moves, two lines to.
	if m, l := strings.Count(paths[0], "M"), strings.Count(paths[0], "L"); m != 2 || l != 2 {
		t.Errorf("RSS path %q: %d moves, %d lines; want 2 and 2", paths[0], m, l)
	}
	if paths[1] != "" {
		t.Errorf("all-NaN line drew %q", paths[1])
	}
	if marks != 2 { // one per panel
		t.Errorf("%d restart marks, want 2", marks)
	}
	// x = 0 is at the left edge, x = 240 at the right; 200 MB is the top
	// value of a scale that starts at 0.
	if !strings.HasPrefix(paths[0], "M70.0,") {
		t.Errorf("first point %q not at the left edge", paths[0][:12])
	}
}

// TestSoakSmoke runs a short soak against a real rubato binary. It takes
// minutes, so it runs only with RUBATO_SOAK_SMOKE=1 (CI runs go test
// without -short): RUBATO_SOAK_SMOKE=1 go test ./cmd/rubato-bench -run TestSoakSmoke -v
func TestSoakSmoke(t *testing.T) {
	if os.Getenv("RUBATO_SOAK_SMOKE") == "" {
		t.Skip("set RUBATO_SOAK_SMOKE=1 to run the soak smoke test")
	}
	if err := os.Chdir("../.."); err != nil { // runSoak builds ./cmd/rubato
		t.Fatal(err)
	}
	var cfg config
	cfg.profile, cfg.tracesPerReq, cfg.spansPer, cfg.concurrency, cfg.syncPolicy = profileRealistic, 50, 10, 2, "always"
	cfg.dir = t.TempDir()
	sc := &soakConfig{duration: time.Minute, ratePercent: 50, probe: 10 * time.Second, restartEvery: 20 * time.Second,
		sampleEvery: time.Second, lookupsPerS: 20, searchEveryS: 2 * time.Second, out: t.TempDir()}
	// A minute is too short for the growth check to mean anything (the
	// WAL fills until the first cut), so only loss and lookups that
	// missed fail this test.
	err := runSoak(cfg, sc)
	var sf *soakFailure
	switch {
	case errors.As(err, &sf):
		if sf.lost > 0 || sf.misses > 0 {
			t.Fatalf("%d acknowledged traces lost, %d lookups missed: %q", sf.lost, sf.misses, sf.checks)
		}
		t.Logf("growth checks (not meaningful in a minute): %q", sf.checks)
	case err != nil:
		t.Fatal(err)
	}
	for _, f := range []string{"soak.csv", "soak.svg"} {
		if fi, err := os.Stat(sc.out + "/" + f); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}
