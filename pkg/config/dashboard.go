package config

import (
	"net"
	"strings"
)

// Dashboard settings: the web dashboard and its JSON API (/api/v1/), served
// by `indexpilot run` when Listen is set and by `indexpilot dashboard`.
type Dashboard struct {
	// Listen is the HTTP address ("127.0.0.1:8089"); "" means no dashboard
	// in `indexpilot run`. A port without a host (":8089") binds the
	// loopback interface: to expose it, name the host ("0.0.0.0:8089").
	// INDEXPILOT_DASHBOARD_LISTEN.
	Listen string `yaml:"listen"`
	// Token is the bearer token that allows changes (approve, reject,
	// bypass). Empty means the dashboard and its API are read-only.
	// INDEXPILOT_DASHBOARD_TOKEN. It is never printed or logged.
	Token string `yaml:"token" secret:"token"`
}

// DefaultDashboardListen is the address `indexpilot dashboard` uses when
// dashboard.listen is empty.
const DefaultDashboardListen = "127.0.0.1:8089"

// minTokenLength is the shortest token accepted: a short one is guessable.
const minTokenLength = 16

// Address is the address to bind: Listen with the loopback host filled in
// when it names none, or DefaultDashboardListen when it is empty.
func (d Dashboard) Address() string {
	if d.Listen == "" {
		return DefaultDashboardListen
	}
	host, port, err := net.SplitHostPort(d.Listen)
	if err != nil || host != "" {
		return d.Listen
	}
	return net.JoinHostPort("127.0.0.1", port)
}

func (d Dashboard) validate(add func(string, ...any)) {
	if d.Listen != "" {
		if _, port, err := net.SplitHostPort(d.Listen); err != nil || port == "" {
			add("dashboard.listen: %q is not host:port (e.g. 127.0.0.1:8089)", d.Listen)
		}
	}
	if d.Token != "" && (len(d.Token) < minTokenLength || strings.TrimSpace(d.Token) != d.Token) {
		// The token itself is never part of the message.
		add("dashboard.token: must be at least %d characters without surrounding spaces", minTokenLength)
	}
}
