package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDashboardListenTokenAndRedaction(t *testing.T) {
	for listen, want := range map[string]string{
		"": DefaultDashboardListen, ":8089": "127.0.0.1:8089", "0.0.0.0:9000": "0.0.0.0:9000", "[::1]:8089": "[::1]:8089",
	} {
		require.Equal(t, want, Dashboard{Listen: listen}.Address(), "listen %q", listen)
	}
	const token = "a-dashboard-token-long-enough"
	cfg, err := Load("", []string{"INDEXPILOT_DATABASE_URL=postgres://x@h/db", "INDEXPILOT_DASHBOARD_LISTEN=:8089",
		"INDEXPILOT_DASHBOARD_TOKEN=" + token})
	require.NoError(t, err)
	require.Equal(t, token, cfg.Dashboard.Token)
	y, err := cfg.Redacted().YAML()
	require.NoError(t, err)
	require.NotContains(t, string(y), token)
	require.Contains(t, string(y), "token: REDACTED")

	_, err = Load("", []string{"INDEXPILOT_DATABASE_URL=postgres://x@h/db", "INDEXPILOT_DASHBOARD_LISTEN=8089",
		"INDEXPILOT_DASHBOARD_TOKEN=short-secret"})
	require.Error(t, err)
	require.Contains(t, err.Error(), `dashboard.listen: "8089" is not host:port`)
	require.Contains(t, err.Error(), "dashboard.token: must be at least 16 characters")
	require.False(t, strings.Contains(err.Error(), "short-secret"), "the token is never in an error")
}
