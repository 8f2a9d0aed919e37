package config

// Gatekeeper settings: the safety rules applied to every candidate after
// features.auto_indexer decided the mode.
type Gatekeeper struct{}

func defaultGatekeeper() Gatekeeper { return Gatekeeper{} }

func (g Gatekeeper) validate(add func(string, ...any)) {}
