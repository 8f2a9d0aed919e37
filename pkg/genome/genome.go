// Package genome reads schema_config.yaml, the optional overrides of the
// genome catalog: per table and field whether it may be indexed, whether
// it is required, its feature group and default expression, and the name
// of the tenant column. Decoding is strict: an unknown key is an error
// that names it.
//
//	tenant_column: tenant_id
//	tables:
//	  public.contacts:            # "schema.table", or "table" for public
//	    fields:
//	      notes: {indexable: false}
//	      email: {required: true, feature_group: crm}
package genome

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Field is the override of one field. A nil pointer leaves the catalog's
// value alone.
type Field struct {
	Indexable         *bool   `yaml:"indexable"`
	Required          *bool   `yaml:"required"`
	FeatureGroup      *string `yaml:"feature_group"`
	DefaultExpression *string `yaml:"default_expression"`
}

// Table is the overrides of one table's fields.
type Table struct {
	Fields map[string]Field `yaml:"fields"`
}

// Config is schema_config.yaml.
type Config struct {
	// TenantColumn names the column that holds the tenant id in
	// multi-tenant tables; "" when there is none.
	TenantColumn string           `yaml:"tenant_column"`
	Tables       map[string]Table `yaml:"tables"`
}

// Load reads path. An empty path gives an empty Config.
func Load(path string) (Config, error) {
	if path == "" {
		return Config{}, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read schema config: %w", err)
	}
	return Parse(b)
}

// Parse decodes schema_config.yaml strictly.
func Parse(b []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("decode schema config: %w", err)
	}
	for name := range c.Tables {
		if name == "" || strings.Count(name, ".") > 1 {
			return Config{}, fmt.Errorf("decode schema config: tables.%s: not a table name", name)
		}
	}
	return c, nil
}

// Indexable reports whether schema.table.field may be indexed: false only
// when the config says indexable: false for it.
func (c Config) Indexable(schema, table, field string) bool {
	for _, name := range []string{schema + "." + table, table} {
		if name == table && schema != "public" {
			continue
		}
		if t, ok := c.Tables[name]; ok {
			if f, ok := t.Fields[field]; ok && f.Indexable != nil {
				return *f.Indexable
			}
		}
	}
	return true
}
