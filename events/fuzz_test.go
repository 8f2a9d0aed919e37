package events_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/indexpilot/indexpilot/events"
)

// The properties of events.Read, the decode path of every consumer:
//
//   - it never panics and never hangs (each input gets fuzzDeadline);
//   - an error is a plain one-line message;
//   - an accepted event satisfies its own validation, its id is its
//     payload's id recipe, and it round-trips: encoded again (Wrap,
//     Marshal) it is read back to the same envelope and payload.
//
// docs/reliability.md has the counted runs and their commands.

const fuzzDeadline = 10 * time.Second

// withDeadline runs f and fails t when it takes longer than fuzzDeadline
// (a hang), instead of waiting for the test binary's timeout.
func withDeadline(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(fuzzDeadline):
		t.Fatalf("no answer within %s", fuzzDeadline)
	}
}

// fuzzSeeds are the golden fixtures (the real events of every type), in
// their indented and wire forms, and malformed variants of them.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	var out [][]byte
	paths, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, b); err != nil {
			f.Fatal(err)
		}
		s := string(b)
		out = append(out, b, compact.Bytes(),
			[]byte(strings.Replace(s, `.v1"`, `.v2"`, 1)),                      // a version this build does not know
			[]byte(strings.Replace(s, `"target": "main"`, `"target": ""`, 1)),  // a required field empty
			[]byte(strings.Replace(s, `"target": "main",`, ``, 1)),             // ... or missing
			[]byte(strings.Replace(s, `"subject": "main"`, `"subject": 7`, 1)), // a wrong type
			[]byte(s[:len(s)/2]), // cut short
		)
	}
	out = append(out, []byte(""), []byte("null"), []byte("{}"), []byte("[]"), []byte("not json"),
		[]byte(`{"id":"x","type":"querystat.observed.v1","subject":"main","data":null}`),
		[]byte(`{"id":"x","type":"querystat.observed.v1","subject":"main","data":{"calls":"many"}}`))
	return out
}

// FuzzRead feeds arbitrary bytes to events.Read.
func FuzzRead(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		withDeadline(t, func() {
			env, p, err := events.Read(b)
			if err != nil {
				requireOneLine(t, err)
				return
			}
			requireRoundTrip(t, env, p)
		})
	})
}

// FuzzDecodePayload feeds arbitrary bytes as the data of an envelope of
// each type, so the fuzzer reaches every payload's fields and validation
// without having to find a matching id first.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		env, err := events.Unmarshal(s)
		if err != nil {
			continue
		}
		for i, ty := range events.Types {
			if ty == env.Type {
				f.Add(uint8(i), []byte(env.Data))
			}
		}
	}
	f.Fuzz(func(t *testing.T, ty uint8, data []byte) {
		withDeadline(t, func() {
			typ := events.Types[int(ty)%len(events.Types)]
			p, err := events.Decode(events.Envelope{ID: "x", Type: typ, Subject: "x", Data: data})
			if err != nil {
				requireOneLine(t, err)
				return
			}
			if p.EventType() != typ {
				t.Fatalf("decoded a %s envelope as %s", typ, p.EventType())
			}
			env, err := events.Wrap(p, "fuzz", "", time.Unix(0, 0))
			if err != nil {
				t.Fatalf("wrap an accepted %s: %v", typ, err)
			}
			requireRoundTrip(t, env, p)
		})
	})
}

func requireOneLine(t *testing.T, err error) {
	t.Helper()
	if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\n\r") {
		t.Fatalf("error is not one line: %q", msg)
	}
}

// requireRoundTrip checks an accepted event: valid, its id its recipe,
// and read back equal once encoded again.
func requireRoundTrip(t *testing.T, env events.Envelope, p events.Payload) {
	t.Helper()
	if err := p.Validate(); err != nil {
		t.Fatalf("accepted %s fails its own validation: %v", env.Type, err)
	}
	if env.ID != p.EventID() || env.Subject != p.EventSubject() || env.Type != p.EventType() {
		t.Fatalf("accepted envelope (%s, %s, %s) disagrees with its payload (%s, %s, %s)",
			env.ID, env.Subject, env.Type, p.EventID(), p.EventSubject(), p.EventType())
	}
	again, err := events.Wrap(p, env.Producer, env.CorrelationID, env.OccurredAt)
	if err != nil {
		t.Fatalf("wrap an accepted %s: %v", env.Type, err)
	}
	b, err := events.Marshal(again)
	if err != nil {
		t.Fatalf("marshal an accepted %s: %v", env.Type, err)
	}
	if len(b) > events.MaxEventBytes {
		return // JSON escaping can grow a string sixfold: over the limit is refused, as it should be
	}
	env2, p2, err := events.Read(b)
	if err != nil {
		t.Fatalf("an accepted %s does not read back: %v\n%s", env.Type, err, b)
	}
	if env2.ID != again.ID || env2.Type != again.Type || env2.Subject != again.Subject ||
		env2.Producer != again.Producer || env2.CorrelationID != again.CorrelationID ||
		!env2.OccurredAt.Equal(again.OccurredAt) || !bytes.Equal(env2.Data, again.Data) {
		t.Fatalf("envelope changed on the round trip:\n%+v\n%+v", again, env2)
	}
	want, _ := json.Marshal(p)
	got, _ := json.Marshal(p2)
	if !bytes.Equal(want, got) {
		t.Fatalf("%s payload changed on the round trip:\n%s\n%s", env.Type, want, got)
	}
}
