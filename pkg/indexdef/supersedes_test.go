package indexdef

import (
	"testing"

	"github.com/indexpilot/indexpilot/events"
)

func TestSupersedes(t *testing.T) {
	on := func(pred string, cols ...string) events.IndexSpec {
		return events.IndexSpec{Schema: "public", Table: "t", Method: "btree", Columns: cols, Predicate: pred}
	}
	dirs := func(s events.IndexSpec, d ...string) events.IndexSpec {
		s.Directions = d
		return s
	}
	closedAt := func(c string) bool { return c == "closed_at" }
	for _, tc := range []struct {
		name      string
		kept, old events.IndexSpec
		updated   func(string) bool
		want      bool
	}{
		{"left prefix", on("", "a", "b"), on("", "a"), nil, true},
		{"same keys", on("", "a"), on("", "a"), nil, false},
		{"not a prefix", on("", "b", "a"), on("", "a"), nil, false},
		{"shorter kept", on("", "a"), on("", "a", "b"), nil, false},
		{"partial prefix, same predicate", on("(closed_at IS NULL)", "a", "b"), on("(closed_at IS NULL)", "a"), nil, true},
		{"partial on an updated column next to full, same keys", on("", "a"), on("(closed_at IS NULL)", "a"), closedAt, true},
		{"partial on an updated column next to a longer full", on("", "a", "b"), on("(closed_at IS NULL)", "a"), closedAt, true},
		{"partial on a column never updated", on("", "a"), on("(deleted_at IS NULL)", "a"), closedAt, false},
		{"nothing known of updates", on("", "a"), on("(closed_at IS NULL)", "a"), nil, false},
		{"full is never superseded by a partial", on("(closed_at IS NULL)", "a", "b"), on("", "a"), closedAt, false},
		{"other table", events.IndexSpec{Schema: "public", Table: "u", Method: "btree", Columns: []string{"a", "b"}}, on("", "a"), nil, false},
		{"reversed order is served by a backward scan", dirs(on("", "a", "b", "c"), events.DirDesc, events.DirDesc), on("", "a", "b"), nil, true},
		{"kept in the forward order serves a uniformly reversed old", on("", "a", "b", "c"), dirs(on("", "a", "b"), events.DirDesc, events.DirDesc), nil, true},
		{"mixed directions do not serve the uniform order", dirs(on("", "a", "b", "c"), events.DirAsc, events.DirDesc), on("", "a", "b"), nil, false},
		{"the uniform order does not serve mixed directions", on("", "a", "b", "c"), dirs(on("", "a", "b"), events.DirDesc, events.DirAsc), nil, false},
		{"other method", on("", "a", "b"), events.IndexSpec{Schema: "public", Table: "t", Method: "hash", Columns: []string{"a"}}, nil, false},
	} {
		if got := Supersedes(tc.kept, tc.old, tc.updated); got != tc.want {
			t.Errorf("%s: Supersedes = %v, want %v", tc.name, got, tc.want)
		}
	}
}
