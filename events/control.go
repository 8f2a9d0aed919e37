package events

import (
	"strconv"
	"time"
)

// ControlSubject is the subject (and Kafka key) of control events: they are
// about the whole installation, not one target, and keep one order.
const ControlSubject = "indexpilot"

// BypassChanged says that one bypass switch changed at run time (through
// `indexpilot bypass set`). Every running instance of every stage reads it
// on the control topic, each in its own consumer group, and applies it; the
// same row is persisted in indexpilot.bypass_state, which stays the source
// of truth (a watcher that missed the event catches up from it).
//
// Level is feature, stage, system, startup or emergency; Name is the
// feature or stage for those levels and "" otherwise. Disabled true means
// the switch now disables what it names. ChangeID orders the changes of one
// switch (a higher id wins).
//
// Id recipe: "bypass_changed", change_id.
type BypassChanged struct {
	ChangeID  string     `json:"change_id"`
	Level     string     `json:"level"`
	Name      string     `json:"name"`
	Disabled  bool       `json:"disabled"`
	Reason    string     `json:"reason"`
	Actor     string     `json:"actor"`
	ChangedAt time.Time  `json:"changed_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// BypassChangeID renders a bypass_state change number as the string the
// event carries.
func BypassChangeID(n int64) string { return strconv.FormatInt(n, 10) }

func (*BypassChanged) EventType() Type        { return TypeBypassChanged }
func (p *BypassChanged) EventID() string      { return DeterministicID("bypass_changed", p.ChangeID) }
func (p *BypassChanged) EventSubject() string { return ControlSubject }
