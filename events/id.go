package events

import (
	"strings"
	"time"

	"github.com/google/uuid"
)

// Namespace is the UUIDv5 namespace of every IndexPilot id. Changing it
// changes every id, so it never changes.
var Namespace = uuid.MustParse("6f1b0e62-4d1c-5a7e-9f43-2c8d3b0a7e15")

// DeterministicID is the UUIDv5 of the parts joined by "|" in Namespace. Each
// payload type documents its recipe (the parts, in order) in events/README.md.
func DeterministicID(parts ...string) string {
	return uuid.NewSHA1(Namespace, []byte(strings.Join(parts, "|"))).String()
}

// stamp renders a time for an id recipe: RFC 3339 UTC with microseconds, the
// precision PostgreSQL keeps.
func stamp(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.000000Z")
}
