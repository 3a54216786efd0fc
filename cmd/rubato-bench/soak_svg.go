package main

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"strconv"
)

// A small SVG line-chart writer for the soak: panels stacked vertically
// over one time axis, each with its own y scale, and vertical marks (the
// restarts). NaN values break a line. No plotting dependency for one chart.

type svgLine struct {
	label, color string
	ys           []float64 // one per x; NaN = no value
}

type svgPanel struct {
	title string
	scale float64 // values are divided by it before they are drawn
	unit  string
	lines []svgLine
}

type svgChart struct {
	title  string
	xs     []float64 // seconds
	marks  []float64 // seconds; drawn as dashed vertical lines
	panels []svgPanel
}

const (
	svgWidth       = 900
	svgPanelHeight = 150
	svgLeft        = 70
	svgRight       = 20
	svgTop         = 40
	svgGap         = 40
)

func (c *svgChart) write(w io.Writer) error {
	var b bytes.Buffer
	height := svgTop + len(c.panels)*(svgPanelHeight+svgGap) + 20
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", svgLeft, html.EscapeString(c.title))
	xmin, xmax := rangeOf(c.xs)
	if !(xmax > xmin) {
		xmax = xmin + 1
	}
	plotW := float64(svgWidth - svgLeft - svgRight)
	px := func(x float64) float64 { return svgLeft + (x-xmin)/(xmax-xmin)*plotW }
	for i, p := range c.panels {
		top := float64(svgTop + i*(svgPanelHeight+svgGap) + 15)
		bottom := top + svgPanelHeight - 15
		lo, hi := math.NaN(), math.NaN()
		for _, l := range p.lines {
			a, z := rangeOf(l.ys)
			lo, hi = nanMin(lo, a), nanMax(hi, z)
		}
		scale := p.scale
		if scale == 0 {
			scale = 1
		}
		if math.IsNaN(lo) {
			lo, hi = 0, 1
		}
		lo, hi = math.Min(0, lo/scale), hi/scale
		if !(hi > lo) {
			hi = lo + 1
		}
		hi *= 1.05
		py := func(v float64) float64 { return bottom - (v/scale-lo)/(hi-lo)*(bottom-top) }
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" font-weight="bold">%s</text>`+"\n", svgLeft, top-5, html.EscapeString(p.title))
		fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#999"/>`+"\n", svgLeft, top, plotW, bottom-top)
		for k := 0; k <= 4; k++ {
			v := lo + (hi-lo)*float64(k)/4
			y := bottom - (bottom-top)*float64(k)/4
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", svgLeft, y, svgLeft+plotW, y)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s%s</text>`+"\n", svgLeft-4, y+4, tickLabel(v), p.unit)
		}
		for k := 0; k <= 6; k++ {
			x := xmin + (xmax-xmin)*float64(k)/6
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px(x), bottom+13, tickLabel(math.Round(x/6)/10)+"m")
		}
		for _, m := range c.marks {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#c00" stroke-dasharray="4,3"/>`+"\n", px(m), top, px(m), bottom)
		}
		lx := float64(svgWidth - svgRight - 10)
		for j := len(p.lines) - 1; j >= 0; j-- {
			l := p.lines[j]
			var d bytes.Buffer
			pen := false
			for k, x := range c.xs {
				if k >= len(l.ys) || math.IsNaN(l.ys[k]) {
					pen = false
					continue
				}
				cmd := 'L'
				if !pen {
					cmd = 'M'
				}
				fmt.Fprintf(&d, "%c%.1f,%.1f", cmd, px(x), py(l.ys[k]))
				pen = true
			}
			fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.5"/>`+"\n", d.String(), l.color)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="%s">%s</text>`+"\n", lx, top-5, l.color, html.EscapeString(l.label))
			lx -= 7*float64(len(l.label)) + 15
		}
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

func rangeOf(v []float64) (lo, hi float64) {
	lo, hi = math.NaN(), math.NaN()
	for _, x := range v {
		if !math.IsNaN(x) {
			lo, hi = nanMin(lo, x), nanMax(hi, x)
		}
	}
	return lo, hi
}

func nanMin(a, b float64) float64 {
	if math.IsNaN(a) || b < a {
		return b
	}
	return a
}

func tickLabel(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100 || v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// writeSoakSVG draws the soak's samples, the restarts as marks.
func writeSoakSVG(path string, rows []soakSample, restarts []restartEvent, title string) error {
	col := func(name string) []float64 {
		get := seriesGetter(name)
		out := make([]float64, len(rows))
		for i := range rows {
			out[i] = get(&rows[i])
		}
		return out
	}
	c := svgChart{title: title + " (dashed: restarts)"}
	for i := range rows {
		c.xs = append(c.xs, rows[i].t)
	}
	for _, r := range restarts {
		c.marks = append(c.marks, r.at.Seconds())
	}
	c.panels = []svgPanel{
		{title: "memory", scale: 1e6, unit: "MB", lines: []svgLine{{"RSS", "#1f77b4", col("rss_bytes")}, {"heap in use", "#2ca02c", col("heap_inuse_bytes")}}},
		{title: "goroutines", lines: []svgLine{{"go_goroutines", "#9467bd", col("goroutines")}}},
		{title: "open files", lines: []svgLine{{"process_open_fds", "#8c564b", col("open_fds")}}},
		{title: "WAL on disk", scale: 1e6, unit: "MB", lines: []svgLine{{"WAL directory", "#ff7f0e", col("wal_bytes")}, {"segments", "#bcbd22", col("wal_segment_bytes")}}},
		{title: "backend blocks", lines: []svgLine{{"live", "#17becf", col("backend_blocks")}, {"compacted, awaiting deletion", "#7f7f7f", col("compacted_blocks")}}},
		{title: "spans acknowledged", scale: 1e6, unit: "M", lines: []svgLine{{"spans", "#d62728", col("spans_acked")}}},
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := c.write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
