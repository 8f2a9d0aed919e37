package scorer

import (
	"context"
	"fmt"

	"github.com/indexpilot/indexpilot/pkg/genome"
)

// genomeRules is what the genome says about candidates of one target.
type genomeRules struct {
	tenantColumn string
	// expressions is the expression_checks feature: expression_profile
	// was consulted and expression candidates may be generated.
	expressions bool
	// off: "schema.table.field" never to index — marked not indexable in
	// schema_config.yaml or genome_catalog, or disabled for every tenant
	// in expression_profile.
	off map[string]bool
}

func (g *genomeRules) skip(schema, table, column string) bool {
	return g.off[schema+"."+table+"."+column]
}

// loadGenome reads scorer.schema_config and the target's genome_catalog
// and, when profile is true (the expression_checks feature is on), its
// expression_profile rows.
func (s *Scorer) loadGenome(ctx context.Context, target string, profile bool) (*genomeRules, error) {
	cfg, err := genome.Load(s.deps.Config.Scorer.SchemaConfig)
	if err != nil {
		return nil, err
	}
	g := &genomeRules{tenantColumn: cfg.TenantColumn, expressions: profile, off: map[string]bool{}}
	for name, t := range cfg.Tables {
		schema, table := "public", name
		for i := 0; i < len(name); i++ {
			if name[i] == '.' {
				schema, table = name[:i], name[i+1:]
				break
			}
		}
		for field, f := range t.Fields {
			if f.Indexable != nil && !*f.Indexable {
				g.off[schema+"."+table+"."+field] = true
			}
		}
	}
	if s.deps.Control == nil {
		// Advise: no control database, the configuration only.
		return g, nil
	}
	rows, err := s.deps.Control.Query(ctx, `/* indexpilot:scorer */
select schema_name, table_name, field_name from indexpilot.genome_catalog
 where target = $1 and not is_indexable
union
select schema_name, table_name, field_name from indexpilot.expression_profile
 where target = $1 and $2
 group by schema_name, table_name, field_name
having not bool_or(is_enabled)`, target, profile)
	if err != nil {
		return nil, fmt.Errorf("read genome of %s: %w", target, err)
	}
	defer rows.Close()
	for rows.Next() {
		var schema, table, field string
		if err := rows.Scan(&schema, &table, &field); err != nil {
			return nil, fmt.Errorf("read genome of %s: %w", target, err)
		}
		g.off[schema+"."+table+"."+field] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read genome of %s: %w", target, err)
	}
	return g, nil
}
