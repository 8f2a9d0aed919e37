package collector

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/config"
)

func TestChooseAppStatsMode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		setting string
		table   bool
		wal     string
		pub     bool
		want    string
		wantErr string
		whyHas  string
	}{
		{"streams when it can", "", true, "logical", true, modeReplication, "", "logical replication"},
		{"wal_level replica falls back to polling and says why", "", true, "replica", true, modePoll, "", "wal_level is replica, not logical"},
		{"missing publication falls back to polling", config.AppStatsAuto, true, "logical", false, modePoll, "", "run indexpilot init --target main"},
		{"poll forced", config.AppStatsPoll, true, "logical", true, modePoll, "", "app_stats: poll"},
		{"replication forced but impossible", config.AppStatsReplication, true, "replica", true, "", "replication is impossible: wal_level is replica", ""},
		{"no table yet", "", false, "logical", false, modeNotInstalled, "", "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := choose(config.Target{Name: "main", AppStats: tc.setting}, tc.table, tc.wal, tc.pub)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, p.mode)
			require.Contains(t, p.why, tc.whyHas)
		})
	}
}
