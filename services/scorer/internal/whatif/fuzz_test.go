package whatif

import "testing"

// FuzzAnalyzeStatement: any text either fails to parse or gives a shape
// whose text parses again, without a panic.
func FuzzAnalyzeStatement(f *testing.F) {
	for _, s := range []string{
		"select * from t where d <= date $1 - interval $2 day and x in ($3 /*, ... */)",
		"select extract($1 from d), sum(case when s = $2 then $3 else $4 end) from t where x between $5 - $6 and $7 + $8",
		"select * from a x join b y on x.id = y.id where y.c > timestamp $1 order by x.d limit $2 offset $3",
		"select $1::interval day",
		"with c as (select * from t where a = $1) select * from c where b < $2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		sh, err := AnalyzeStatement(q)
		if err != nil {
			return
		}
		if sh.Rewritten {
			if _, err := AnalyzeStatement(sh.Text); err != nil {
				t.Fatalf("rewritten text does not parse: %q -> %q: %v", q, sh.Text, err)
			}
		}
		for n := range sh.Units {
			_ = sh.bindValue(n, "90")
		}
		_ = sh.guessTypes()
	})
}
