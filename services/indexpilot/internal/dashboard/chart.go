package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/decisions"
)

// chart is one server-rendered SVG chart.
type chart struct {
	Title string
	SVG   template.HTML
}

// paretoChart draws a target's candidates as points, read saving (y)
// against write cost (x), both in plan-cost units over the scoring window:
// filled points are the chosen set, hollow ones were left out (held,
// superseded, rejected...). The line joins the Pareto frontier (no other
// candidate saves more for less write cost). ok is false when no candidate
// carries the numbers (formula v1).
func paretoChart(target string, recs []recView) (chart, bool) {
	var pts []recView
	for _, r := range recs {
		if r.ReadSaving > 0 || r.WriteCost > 0 {
			pts = append(pts, r)
		}
	}
	if len(pts) == 0 {
		return chart{}, false
	}
	const w, h, left, right, top, bottom = 640.0, 320.0, 70.0, 20.0, 20.0, 50.0
	maxX, maxY := 0.0, 0.0
	for _, p := range pts {
		maxX, maxY = math.Max(maxX, p.WriteCost), math.Max(maxY, p.ReadSaving)
	}
	maxX, maxY = niceMax(maxX), niceMax(maxY)
	px := func(x float64) float64 { return left + x/maxX*(w-left-right) }
	py := func(y float64) float64 { return h - bottom - y/maxY*(h-top-bottom) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" role="img" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" xmlns="http://www.w3.org/2000/svg">`, w, h, w, h)
	fmt.Fprintf(&b, `<title>Read saving against write cost, target %s</title>`, template.HTMLEscapeString(target))
	// Axes and ticks.
	fmt.Fprintf(&b, `<line class="axis" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, left, h-bottom, w-right, h-bottom)
	fmt.Fprintf(&b, `<line class="axis" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, left, top, left, h-bottom)
	for i := 0; i <= 4; i++ {
		x, y := maxX*float64(i)/4, maxY*float64(i)/4
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, px(x), h-bottom+16, tick(x))
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, left-6, py(y)+4, tick(y))
		fmt.Fprintf(&b, `<line class="grid" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, left, py(y), w-right, py(y))
	}
	fmt.Fprintf(&b, `<text class="label" x="%.1f" y="%.1f" text-anchor="middle">write cost (plan-cost units per window)</text>`, (left+w-right)/2, h-8)
	fmt.Fprintf(&b, `<text class="label" transform="translate(14 %.1f) rotate(-90)" text-anchor="middle">read saving (plan-cost units per window)</text>`, (top+h-bottom)/2)
	// Pareto frontier: by write cost ascending, keep the points that save
	// more than every cheaper one.
	sorted := slices.Clone(pts)
	slices.SortFunc(sorted, func(a, b recView) int {
		if a.WriteCost != b.WriteCost {
			return cmpF(a.WriteCost, b.WriteCost)
		}
		return cmpF(b.ReadSaving, a.ReadSaving)
	})
	var front []string
	best := -1.0
	for _, p := range sorted {
		if p.ReadSaving > best {
			best = p.ReadSaving
			front = append(front, fmt.Sprintf("%.1f,%.1f", px(p.WriteCost), py(p.ReadSaving)))
		}
	}
	if len(front) > 1 {
		fmt.Fprintf(&b, `<polyline class="frontier" points="%s"/>`, strings.Join(front, " "))
	}
	for _, p := range pts {
		class := "left-out"
		if chosen(p.State) {
			class = "chosen"
		}
		fmt.Fprintf(&b, `<a href="/recommendations/%s"><circle class="%s" cx="%.1f" cy="%.1f" r="6"><title>%s (%s): saving %.1f, write cost %.1f</title></circle></a>`,
			p.ID, class, px(p.WriteCost), py(p.ReadSaving), template.HTMLEscapeString(p.IndexName), p.State, p.ReadSaving, p.WriteCost)
	}
	b.WriteString(`</svg>`)
	return chart{Title: target, SVG: template.HTML(b.String())}, true // #nosec: every interpolated text is escaped above
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// niceMax rounds v up to 1, 2 or 5 times a power of ten (1 for 0).
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func tick(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// effectChart draws a validated index's statements as pairs of bars: mean
// execution time before (grey) and after (blue) the build, in
// milliseconds, on a common scale.
func effectChart(v decisions.ReportVerdict) (template.HTML, bool) {
	if len(v.Statements) == 0 {
		return "", false
	}
	const w, left, right, row, bar = 640.0, 150.0, 90.0, 38.0, 13.0
	h := 24 + row*float64(len(v.Statements))
	maxMs := 0.0
	for _, s := range v.Statements {
		maxMs = math.Max(maxMs, math.Max(s.BeforeMeanMs, s.AfterMeanMs))
	}
	maxMs = niceMax(maxMs)
	px := func(ms float64) float64 { return ms / maxMs * (w - left - right) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart effect" role="img" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" xmlns="http://www.w3.org/2000/svg">`, w, h, w, h)
	fmt.Fprintf(&b, `<title>Mean execution time before and after %s</title>`, template.HTMLEscapeString(v.IndexName))
	for i, s := range v.Statements {
		y := 12 + row*float64(i)
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="end">query %s</text>`, left-8, y+bar+4, template.HTMLEscapeString(shortID(s.QueryID)))
		fmt.Fprintf(&b, `<rect class="before" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>before: %.3f ms over %d calls</title></rect>`,
			left, y, px(s.BeforeMeanMs), bar, s.BeforeMeanMs, s.BeforeCalls)
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f">%.3f ms before</text>`, left+px(s.BeforeMeanMs)+4, y+bar-3, s.BeforeMeanMs)
		fmt.Fprintf(&b, `<rect class="after" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>after: %.3f ms over %d calls</title></rect>`,
			left, y+bar+1, px(s.AfterMeanMs), bar, s.AfterMeanMs, s.AfterCalls)
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f">%.3f ms after</text>`, left+px(s.AfterMeanMs)+4, y+2*bar-2, s.AfterMeanMs)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()), true // every interpolated text is escaped above
}

func shortID(s string) string {
	if len(s) > 14 {
		return s[:14] + "…"
	}
	return s
}

// tenantChart draws an index's benefit split by tenant as one bar per
// share (tenants, then the "other tenants" and "unattributed" buckets), in
// percent of the benefit on a 0-100 % scale; each bar's tooltip names the
// share's source. "" when there is no split.
func tenantChart(shares []events.TenantShare) template.HTML {
	if len(shares) == 0 {
		return ""
	}
	const w, left, right, row, bar = 640.0, 150.0, 150.0, 24.0, 16.0
	h := 8 + row*float64(len(shares))
	px := func(share float64) float64 { return math.Max(0, math.Min(1, share)) * (w - left - right) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart tenants" role="img" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" xmlns="http://www.w3.org/2000/svg">`, w, h, w, h)
	b.WriteString(`<title>Share of the benefit per tenant, in percent</title>`)
	for i, s := range shares {
		y := 4 + row*float64(i)
		class := "tenant"
		if s.Bucket != "" {
			class = "bucket"
		}
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, left-8, y+bar-4, template.HTMLEscapeString(s.Label()))
		fmt.Fprintf(&b, `<rect class="%s" data-share="%.4f" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %.1f %% of the benefit (from %s)</title></rect>`,
			class, s.Share, left, y, px(s.Share), bar, template.HTMLEscapeString(s.Label()), 100*s.Share, template.HTMLEscapeString(s.Source))
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%.1f">%.1f %% (%s)</text>`, left+px(s.Share)+4, y+bar-4, 100*s.Share,
			template.HTMLEscapeString(s.Source))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every interpolated text is escaped above
}
