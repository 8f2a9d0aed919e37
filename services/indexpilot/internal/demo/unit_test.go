package demo

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

func TestParseMajor(t *testing.T) {
	for in, want := range map[string]int{
		"15": 15, "9.6": 9, "PostgreSQL 15.20": 15, "postgres (PostgreSQL) 16.4 (Debian 16.4-1)": 16,
	} {
		got, ok := parseMajor(in)
		require.True(t, ok, in)
		require.Equal(t, want, got, in)
	}
	_, ok := parseMajor("main")
	require.False(t, ok)
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 20; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, 10*time.Millisecond, percentile(d, 50))
	require.Equal(t, 19*time.Millisecond, percentile(d, 95))
	require.Equal(t, time.Millisecond, percentile(d[:1], 95))
	require.Zero(t, percentile(nil, 50))
}

func TestArgPlanIsDeterministic(t *testing.T) {
	wl := Workload(DefaultScale)
	a := argPlan(wl, 50, 1)
	b := argPlan(wl, 50, 1)
	c := argPlan(wl, 50, 2)
	require.Equal(t, a, b, "same seed, same arguments")
	require.NotEqual(t, a, c, "another seed, other arguments")
	// A statement's arguments do not depend on the other statements.
	only := argPlan(wl[2:3], 50, 1)
	require.NotEqual(t, a[2], only[0], "position is part of the stream")
	require.Equal(t, argPlan(wl[:3], 50, 1)[2], a[2])
}

func TestWorkloadShape(t *testing.T) {
	wl := Workload(DefaultScale)
	names := map[string]bool{}
	indexed := 0
	for _, st := range wl {
		require.False(t, names[st.Name], "duplicate name %s", st.Name)
		names[st.Name] = true
		require.NotContains(t, st.SQL, postgres.MarkerPrefix, "workload plays the application: no marker")
		require.Contains(t, st.SQL, "$1")
		if st.Indexed {
			indexed++
		}
	}
	require.Equal(t, 1, indexed)
	for _, n := range []string{"contact_by_email", "contacts_by_status", "recent_interactions", "organizations_by_industry"} {
		require.True(t, names[n], n)
	}
}

func TestContactFormulas(t *testing.T) {
	s := SmallScale
	for c := int64(1); c <= int64(s.Contacts); c++ {
		o := orgOfContact(s, c)
		require.True(t, o >= 1 && o <= int64(s.Organizations), "org %d of contact %d", o, c)
		tn := tenantOfOrg(s, o)
		require.True(t, tn >= 1 && tn <= int64(s.Tenants), "tenant %d of org %d", tn, o)
	}
	require.Equal(t, contactEmail(s, 17), contactEmail(s, 17))
	require.Contains(t, contactEmail(s, 17), ".17@org")
}

func TestFormatComparison(t *testing.T) {
	before := map[string]Timing{
		"a": {Count: 10, Mean: 10 * time.Millisecond, P95: 12 * time.Millisecond},
		"b": {Count: 10, Mean: time.Millisecond},
		"c": {Count: 5, Mean: time.Millisecond},
	}
	after := map[string]Timing{
		"a": {Count: 10, Mean: time.Millisecond, P95: 2 * time.Millisecond},
		"b": {Count: 10, Mean: time.Millisecond},
		"c": {Count: 6, Mean: time.Millisecond},
		"d": {Count: 3, Mean: time.Millisecond},
	}
	var buf bytes.Buffer
	FormatComparison(&buf, before, after)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 5, buf.String())
	require.Contains(t, lines[0], "mean before")
	require.Regexp(t, `^a\s+10\s+10\.000 ms\s+1\.000 ms\s+10\.0x\s+12\.000 ms\s+2\.000 ms$`, lines[1])
	require.Contains(t, lines[2], "1.0x")
	require.Contains(t, lines[3], "5/6 UNEQUAL")
	require.Regexp(t, `^d\s+3\s+-\s+1\.000 ms\s+-`, lines[4])
}

func TestWithDatabase(t *testing.T) {
	got, err := withDatabase("postgres://u:p@h:5/old?sslmode=disable", "new_db")
	require.NoError(t, err)
	require.Equal(t, "postgres://u:p@h:5/new_db?sslmode=disable", got)
	got, err = withDatabase("host=h user=u", "d")
	require.NoError(t, err)
	require.Equal(t, "host=h user=u dbname='d'", got)
	_, err = withDatabase("postgres://u:s3cret@%zz", "d")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
}

func TestScaleValidate(t *testing.T) {
	require.NoError(t, DefaultScale.Validate())
	require.NoError(t, SmallScale.Validate())
	require.Error(t, Scale{Tenants: 1}.Validate())
}

func TestPrerequisiteErrors(t *testing.T) {
	err := error(prereqError("hypopg is not installed"))
	require.True(t, errors.Is(err, ErrPrerequisite))
	require.False(t, errors.Is(errors.New("other"), ErrPrerequisite))
}

func TestNewestUnder(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9.6", "13", "16", "17"} {
		bin := filepath.Join(root, v, "bin")
		require.NoError(t, os.MkdirAll(bin, 0o755))
		progs := []string{"initdb", "pg_ctl", "postgres"}
		if v == "17" {
			progs = progs[:2] // client-only install: no server binary
		}
		for _, p := range progs {
			require.NoError(t, os.WriteFile(filepath.Join(bin, p), []byte("#!/bin/sh\n"), 0o755))
		}
	}
	dir, major, ok := newestUnder(root)
	require.True(t, ok)
	require.Equal(t, 16, major)
	require.Equal(t, filepath.Join(root, "16", "bin"), dir)
	_, _, ok = newestUnder(filepath.Join(root, "missing"))
	require.False(t, ok)
}

func TestMissingHypopgNamesThePackage(t *testing.T) {
	err := checkExtensionFiles(context.Background(), t.TempDir(), 99)
	require.ErrorIs(t, err, ErrPrerequisite)
	require.ErrorContains(t, err, "postgresql-99-hypopg")
	require.ErrorContains(t, err, "infra/scripts/setup-postgres.sh")
	require.NotContains(t, err.Error(), "\n")
}
