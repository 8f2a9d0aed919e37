package delta

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestExcluded(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT * FROM t WHERE id = $1":                                    false,
		"  select 1":                                                       false,
		"WITH x AS (SELECT 1) SELECT * FROM x":                             false,
		"insert into t values ($1)":                                        false,
		"UPDATE t SET a = $1 WHERE id = $2":                                false,
		"delete from t where id = $1":                                      false,
		"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DO NOTHING": false,
		"(select 1) union (select 2)":                                      false,
		"/* app: checkout */ select * from t":                              false,
		"/* a /* nested */ comment */ select 1":                            false,
		"-- note\nselect 1":                                                false,
		"/* indexpilot:collector */ select 1":                              true,
		"/* app */ /* indexpilot:scorer */ select 1":                       true,
		"BEGIN":                    true,
		"begin read only":          true,
		"COMMIT":                   true,
		"rollback":                 true,
		"SET search_path = public": true,
		"SHOW work_mem":            true,
		"vacuum analyze t":         true,
		"EXPLAIN SELECT 1":         true,
		"create index on t (a)":    true,
		"selectx":                  true,
		"":                         true,
		"<insufficient privilege>": true,
		"/* unterminated select 1": true,
		"-- only a comment":        true,
	} {
		require.Equal(t, want, Excluded(q), "Excluded(%q)", q)
	}
}
