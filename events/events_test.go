package events_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/indexpilot/indexpilot/events"
)

var update = flag.Bool("update", false, "rewrite the golden fixtures in testdata/")

func fixturePath(t events.Type) string {
	return filepath.Join("testdata", string(t)+".json")
}

// TestGoldenFixtures checks that every live type has a fixture that decodes
// strictly into its payload type and re-encodes byte-identically.
func TestGoldenFixtures(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 5, 0, time.UTC)
	seen := map[events.Type]bool{}
	for _, p := range events.Examples() {
		seen[p.EventType()] = true
		env, err := events.Wrap(p, "example", "", at)
		if err != nil {
			t.Fatalf("wrap %s: %v", p.EventType(), err)
		}
		want, err := events.MarshalIndent(env)
		if err != nil {
			t.Fatalf("marshal %s: %v", p.EventType(), err)
		}
		path := fixturePath(p.EventType())
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read fixture for %s: %v (run go test -update once)", p.EventType(), err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("fixture %s differs from the encoding of the example:\n got: %s\nwant: %s", path, got, want)
		}

		// Strict decode then re-encode must give the same bytes.
		dec, err := events.Unmarshal(got)
		if err != nil {
			t.Fatalf("decode %s: %v", path, err)
		}
		payload, err := events.Decode(dec)
		if err != nil {
			t.Fatalf("decode payload %s: %v", path, err)
		}
		if payload.EventID() != dec.ID {
			t.Errorf("%s: envelope id %s, payload recipe gives %s", path, dec.ID, payload.EventID())
		}
		re, err := events.Wrap(payload, dec.Producer, dec.CorrelationID, dec.OccurredAt)
		if err != nil {
			t.Fatal(err)
		}
		reb, err := events.MarshalIndent(re)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(reb, got) {
			t.Errorf("%s does not re-encode byte-identically:\n got: %s\nwant: %s", path, reb, got)
		}
	}
	for _, ty := range events.Types {
		if !seen[ty] {
			t.Errorf("type %s has no example and no fixture", ty)
		}
	}
}

func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	b, err := os.ReadFile(fixturePath(events.TypeQueryStatObserved))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(b), `"calls":`, `"callz": 1, "calls":`, 1)
	env, err := events.Unmarshal([]byte(bad))
	if err != nil {
		t.Fatalf("envelope should decode: %v", err)
	}
	if _, err := events.Decode(env); err == nil || !strings.Contains(err.Error(), "callz") {
		t.Fatalf("decode with unknown payload field: got %v, want an error naming callz", err)
	}
	if _, err := events.Unmarshal([]byte(`{"id":"x","type":"t","subject":"s","extra":1}`)); err == nil {
		t.Fatal("envelope with unknown field decoded without error")
	}
	if _, err := events.Unmarshal([]byte(`{"id":"x","type":"t","subject":"s"} {}`)); err == nil {
		t.Fatal("envelope with trailing data decoded without error")
	}
	var wrong events.IndexBuildFailed
	if err := events.DecodeData(env, &wrong); err == nil {
		t.Fatal("decoding a querystat envelope as a build failure did not fail")
	}
}

// TestTableStatWithoutOptionalCounters: a tablestat.observed.v1 without
// newpage_updates (a PostgreSQL 14/15 target, or a collector from before
// the field) or without server_xact_next (a collector from before the
// field) still decodes strictly, reads as unknown (nil, not 0), and
// re-encodes without the field.
func TestTableStatWithoutOptionalCounters(t *testing.T) {
	b, err := os.ReadFile(fixturePath(events.TypeTableStatObserved))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field, line string
		get         func(*events.TableStatObserved) *int64
	}{
		{"newpage_updates", ",\n    \"newpage_updates\": 12", func(ts *events.TableStatObserved) *int64 { return ts.NewPageUpdates }},
		{"server_xact_next", ",\n    \"server_xact_next\": 7340512", func(ts *events.TableStatObserved) *int64 { return ts.ServerXactNext }},
	} {
		old := strings.Replace(string(b), tc.line, "", 1)
		if old == string(b) {
			t.Fatalf("the tablestat fixture carries no %s to take out", tc.field)
		}
		env, err := events.Unmarshal([]byte(old))
		if err != nil {
			t.Fatalf("decode envelope without %s: %v", tc.field, err)
		}
		var ts events.TableStatObserved
		if err := events.DecodeData(env, &ts); err != nil {
			t.Fatalf("decode tablestat without %s: %v", tc.field, err)
		}
		if v := tc.get(&ts); v != nil {
			t.Fatalf("%s absent on the wire: got %d, want nil (unknown)", tc.field, *v)
		}
		re, err := events.Wrap(&ts, env.Producer, env.CorrelationID, env.OccurredAt)
		if err != nil {
			t.Fatal(err)
		}
		reb, err := events.MarshalIndent(re)
		if err != nil {
			t.Fatal(err)
		}
		if string(reb) != old {
			t.Errorf("tablestat without %s does not re-encode byte-identically:\n got: %s\nwant: %s", tc.field, reb, old)
		}
	}
}

func TestIDsAreDeterministicAndDistinct(t *testing.T) {
	a := events.Examples()
	b := events.Examples()
	ids := map[string]events.Type{}
	for i := range a {
		if a[i].EventID() != b[i].EventID() {
			t.Errorf("%s: id not deterministic: %s vs %s", a[i].EventType(), a[i].EventID(), b[i].EventID())
		}
		if prev, dup := ids[a[i].EventID()]; dup {
			t.Errorf("%s and %s share id %s", prev, a[i].EventType(), a[i].EventID())
		}
		ids[a[i].EventID()] = a[i].EventType()
	}
	q := a[0].(*events.QueryStatObserved)
	q2 := *q
	q2.WindowEnd = q2.WindowEnd.Add(time.Second)
	if q.EventID() == q2.EventID() {
		t.Error("two polls of the same statement share an id")
	}
	spec := events.IndexSpec{Schema: "public", Table: "t", Method: "btree", Columns: []string{"a", "b"}}
	swapped := spec
	swapped.Columns = []string{"b", "a"}
	if events.RecommendationID("x", spec) == events.RecommendationID("x", swapped) {
		t.Error("column order does not change the recommendation id")
	}
	if events.RecommendationID("x", spec) == events.RecommendationID("y", spec) {
		t.Error("target does not change the recommendation id")
	}
}

func TestTopicsAndGroups(t *testing.T) {
	if got := events.Topic(events.TypeIndexDecisionMade); got != "indexpilot.index_decision.made.v1" {
		t.Errorf("topic = %q", got)
	}
	if got := events.PoisonTopic("indexpilot.x.v1"); got != "indexpilot.x.v1.poison" {
		t.Errorf("poison topic = %q", got)
	}
	if got := events.ConsumerGroup("executor", "decisions"); got != "indexpilot.executor.decisions" {
		t.Errorf("group = %q", got)
	}
	var m map[string]any
	b, _ := os.ReadFile(fixturePath(events.TypeQueryStatObserved))
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["data"].(map[string]any)["query_id"].(string); !ok {
		t.Error("query_id is not a string on the wire")
	}
}

func TestReadmeCatalogsEveryType(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, ty := range events.Types {
		if !strings.Contains(string(b), "| `"+string(ty)+"` | `"+events.Topic(ty)+"` |") {
			t.Errorf("events/README.md has no catalog row for %s", ty)
		}
		fx, _ := os.ReadFile(fixturePath(ty))
		if !strings.Contains(string(b), strings.TrimSpace(string(fx))) {
			t.Errorf("events/README.md example of %s differs from its fixture", ty)
		}
	}
}

func TestDescribeWindow(t *testing.T) {
	end := time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		source string
		start  time.Time
		want   string
	}{
		{events.WindowHistoryStatsReset, end.Add(-35*24*time.Hour - time.Hour), "history since 2026-11-02, 35 days"},
		{events.WindowHistoryStatsSince, end.Add(-3 * time.Hour), "history since 2026-12-06, 3 hours"},
		{events.WindowHistoryStatsSince, end.Add(-90 * time.Second), "history since 2026-12-07, 1 minute"},
		{events.WindowHistoryUnknown, end, "history, window unknown"},
		{events.WindowActivity, end, "running (pg_stat_activity)"},
		{events.WindowDelta, end.Add(-time.Minute), ""},
	} {
		if got := events.DescribeWindow(c.source, c.start, end); got != c.want {
			t.Errorf("events.DescribeWindow(%q) = %q, want %q", c.source, got, c.want)
		}
	}
}

// TestReadRefusesWhatWrapNeverMakes: the consumers' decode path refuses an
// envelope whose id is not its payload's, whose subject is not its
// payload's target, whose payload misses a field consumers key rows on, or
// that is over MaxEventBytes; the fixtures themselves are read.
func TestReadRefusesWhatWrapNeverMakes(t *testing.T) {
	b, err := os.ReadFile(fixturePath(events.TypeTableStatObserved))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := events.Read(b); err != nil {
		t.Fatalf("fixture refused: %v", err)
	}
	s := string(b)
	for name, c := range map[string]struct{ body, want string }{
		"forged id":      {strings.Replace(s, `"id": "19b34f41`, `"id": "29b34f41`, 1), "is not the payload's id"},
		"subject":        {strings.Replace(s, `"subject": "main"`, `"subject": "other"`, 1), "subject"},
		"missing schema": {strings.Replace(s, `"schema": "public"`, `"schema": ""`, 1), "missing schema"},
		"unknown source": {strings.Replace(s, `"live_rows"`, `"live_rowz"`, 1), "live_rowz"},
		"oversized":      {"{" + strings.Repeat(" ", events.MaxEventBytes) + s[1:], "over the"},
	} {
		_, _, err := events.Read([]byte(c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", name, err, c.want)
		}
	}
}
