package events

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Sources of a tenant share (TenantShare.Source).
const (
	// TenantSourceAppStats: the calls the application reported per tenant
	// (appstat.observed.v1) on the statement's table, kind and field.
	TenantSourceAppStats = "app_stats"
	// TenantSourceQualstats, TenantSourcePgStats and TenantSourceObserved:
	// the values of the tenant column's parameter among the statement's
	// representative values (pg_qualstats' constants, pg_stats' most
	// common values, observed samples).
	TenantSourceQualstats = "qualstats"
	TenantSourcePgStats   = "pg_stats"
	TenantSourceObserved  = "observed"
	// TenantSourceNone is the source of the unattributed bucket.
	TenantSourceNone = "none"
	// TenantEstimated prefixes the sources of a validated index's shares:
	// the saving per statement was measured, its split by tenant was not
	// (it is the recommendation's).
	TenantEstimated = "estimated:"
)

// Buckets of a TenantShare that is not one tenant.
const (
	// TenantOthers: the tenants beyond the top ones, together.
	TenantOthers = "others"
	// TenantUnattributed: benefit of statements with no per-tenant data,
	// or of calls not scoped to a tenant.
	TenantUnattributed = "unattributed"
)

// TenantTop is how many tenants a list of shares names; the rest are one
// "others" bucket.
const TenantTop = 5

// TenantShare is one tenant's share of an index's benefit (or of one
// statement's calls). Tenant is set for a tenant; Bucket instead for
// TenantOthers or TenantUnattributed. Share is a fraction (0..1); the
// shares of one list sum to 1. Source names where the split came from
// (TenantSource*, several joined with "+"; prefixed with TenantEstimated
// for a validated index).
type TenantShare struct {
	Tenant string  `json:"tenant,omitempty"`
	Bucket string  `json:"bucket,omitempty"`
	Share  float64 `json:"share"`
	Source string  `json:"source"`
}

// Label is "tenant 17", "other tenants" or "unattributed".
func (s TenantShare) Label() string {
	switch s.Bucket {
	case TenantOthers:
		return "other tenants"
	case TenantUnattributed:
		return "unattributed"
	}
	return "tenant " + s.Tenant
}

// TenantPart is one item of a combination: a weight (a statement's
// benefit, a measured saving) and how it splits by tenant. A part without
// shares is unattributed.
type TenantPart struct {
	Weight float64
	Shares []TenantShare
}

// CombineTenantShares splits the total weight of parts by tenant: a
// tenant's share is Σ weight × its share in the part, over Σ weight. It
// returns the top tenants (at most top, largest first, then by id), one
// "others" bucket for the rest, and one "unattributed" bucket for parts
// without shares; nil when no part names a tenant or no weight is
// positive. Parts with a weight ≤ 0 are left out. Shares are rounded to
// 4 decimals.
func CombineTenantShares(parts []TenantPart, top int) []TenantShare {
	type acc struct {
		share   float64
		sources map[string]bool
	}
	tenants := map[string]*acc{}
	others := &acc{sources: map[string]bool{}}
	unattributed := 0.0
	total := 0.0
	named := false
	for _, p := range parts {
		if !(p.Weight > 0) || math.IsInf(p.Weight, 0) {
			continue
		}
		total += p.Weight
		var sum float64
		for _, s := range p.Shares {
			if s.Share > 0 {
				sum += s.Share
			}
		}
		if sum <= 0 {
			unattributed += p.Weight
			continue
		}
		for _, s := range p.Shares {
			if !(s.Share > 0) {
				continue
			}
			w := p.Weight * s.Share / sum
			switch {
			case s.Bucket == TenantUnattributed:
				unattributed += w
			case s.Bucket == TenantOthers:
				others.share += w
				addSources(others.sources, s.Source)
			default:
				a := tenants[s.Tenant]
				if a == nil {
					a = &acc{sources: map[string]bool{}}
					tenants[s.Tenant] = a
				}
				a.share += w
				addSources(a.sources, s.Source)
				named = true
			}
		}
	}
	if !named || total <= 0 {
		return nil
	}
	ids := make([]string, 0, len(tenants))
	for id := range tenants {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := tenants[ids[i]].share, tenants[ids[j]].share
		if a != b {
			return a > b
		}
		return ids[i] < ids[j]
	})
	if top < 1 {
		top = 1
	}
	var out []TenantShare
	for i, id := range ids {
		a := tenants[id]
		if i >= top {
			others.share += a.share
			for s := range a.sources {
				others.sources[s] = true
			}
			continue
		}
		out = append(out, TenantShare{Tenant: id, Share: round4(a.share / total), Source: joinSources(a.sources)})
	}
	if others.share > 0 {
		out = append(out, TenantShare{Bucket: TenantOthers, Share: round4(others.share / total), Source: joinSources(others.sources)})
	}
	if unattributed > 0 {
		out = append(out, TenantShare{Bucket: TenantUnattributed, Share: round4(unattributed / total), Source: TenantSourceNone})
	}
	return out
}

// EstimatedShares returns shares with their sources marked estimated
// (the unattributed bucket's "none" stays).
func EstimatedShares(shares []TenantShare) []TenantShare {
	out := make([]TenantShare, len(shares))
	for i, s := range shares {
		out[i] = s
		if s.Source != TenantSourceNone && !strings.HasPrefix(s.Source, TenantEstimated) {
			out[i].Source = TenantEstimated + s.Source
		}
	}
	return out
}

// TenantSummary says it in one line: "72 % of the saving goes to tenant
// 17; tenant 3 20 %, other tenants 8 % (from app_stats)". "" for no
// shares.
func TenantSummary(shares []TenantShare) string {
	if len(shares) == 0 {
		return ""
	}
	var b strings.Builder
	first := shares[0]
	if first.Bucket == "" {
		fmt.Fprintf(&b, "%s %% of the saving goes to tenant %s", pct(first.Share), first.Tenant)
	} else {
		fmt.Fprintf(&b, "%s %% of the saving is %s", pct(first.Share), first.Label())
	}
	sources := map[string]bool{}
	addSources(sources, first.Source)
	for i, s := range shares[1:] {
		if i == 0 {
			b.WriteString("; ")
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s %%", s.Label(), pct(s.Share))
		if s.Bucket != TenantUnattributed {
			addSources(sources, s.Source)
		}
	}
	fmt.Fprintf(&b, " (from %s)", joinSources(sources))
	return b.String()
}

func pct(f float64) string {
	v := math.Round(f*1000) / 10
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func addSources(set map[string]bool, joined string) {
	for _, s := range strings.Split(joined, "+") {
		if s != "" {
			set[s] = true
		}
	}
}

func joinSources(set map[string]bool) string {
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return strings.Join(out, "+")
}

func round4(f float64) float64 { return math.Round(f*10000) / 10000 }
