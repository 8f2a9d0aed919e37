package config

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

var durationType = reflect.TypeOf(time.Duration(0))

// decodeYAML decodes b over cfg. Before decoding it walks the document
// against the Go type so that every unknown or duplicate key is reported
// with its full key path (features.auto_indexer.mode), not just a line.
func decodeYAML(b []byte, cfg *Config) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("parse yaml: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	var probs []string
	checkNode(root, reflect.TypeOf(*cfg), "", &probs)
	if len(probs) > 0 {
		return errors.New(strings.Join(probs, "; "))
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return errors.New(strings.Join(te.Errors, "; "))
		}
		return fmt.Errorf("decode yaml: %w", err)
	}
	return nil
}

func yamlKey(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	if i := strings.IndexByte(tag, ','); i >= 0 {
		tag = tag[:i]
	}
	if tag == "" {
		return strings.ToLower(f.Name)
	}
	return tag
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func checkNode(n *yaml.Node, t reflect.Type, path string, probs *[]string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == durationType {
			return
		}
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return
			}
			*probs = append(*probs, fmt.Sprintf("%s: line %d: expected a mapping", orRoot(path), n.Line))
			return
		}
		fields := map[string]reflect.StructField{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.IsExported() {
				fields[yamlKey(f)] = f
			}
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			if line, dup := seen[k.Value]; dup {
				*probs = append(*probs, fmt.Sprintf("%s: duplicate key (line %d, first at line %d)", p, k.Line, line))
				continue
			}
			seen[k.Value] = k.Line
			f, ok := fields[k.Value]
			if !ok {
				*probs = append(*probs, fmt.Sprintf("%s: unknown key (line %d)", p, k.Line))
				continue
			}
			checkNode(v, f.Type, p, probs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			checkNode(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), probs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if line, dup := seen[k.Value]; dup {
				*probs = append(*probs, fmt.Sprintf("%s: duplicate key (line %d, first at line %d)", join(path, k.Value), k.Line, line))
			}
			seen[k.Value] = k.Line
			checkNode(n.Content[i+1], t.Elem(), join(path, k.Value), probs)
		}
	}
}

func orRoot(p string) string {
	if p == "" {
		return "(root)"
	}
	return p
}

// EnvPrefix starts every environment variable IndexPilot reads.
const EnvPrefix = "INDEXPILOT_"

// applyEnv overrides cfg from INDEXPILOT_* variables. Scalars and string
// lists (comma separated) map by key path; INDEXPILOT_TARGETS takes
// "name=dsn" pairs separated by ";" or newlines. An INDEXPILOT_ variable
// that names no setting is an error, so a typo is never silently ignored.
func applyEnv(cfg *Config, env []string) error {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix) {
			vars[k] = v
		}
	}
	known := map[string]bool{EnvPrefix + "TARGETS": true}
	// Variables read elsewhere (by the CLI or tests), not settings.
	for _, k := range []string{"CONFIG", "DEMO_KEEP"} {
		known[EnvPrefix+k] = true
	}
	var probs []string
	walkEnv(reflect.ValueOf(cfg).Elem(), "", func(name string, v reflect.Value) {
		known[name] = true
		raw, ok := vars[name]
		if !ok {
			return
		}
		if err := setFromString(v, raw); err != nil {
			probs = append(probs, fmt.Sprintf("%s: %v", name, err))
		}
	})
	if raw, ok := vars[EnvPrefix+"TARGETS"]; ok {
		ts, err := parseTargets(raw)
		if err != nil {
			probs = append(probs, EnvPrefix+"TARGETS: "+err.Error())
		} else {
			cfg.Targets = ts
		}
	}
	for k := range vars {
		if !known[k] {
			probs = append(probs, k+": names no setting")
		}
	}
	if len(probs) > 0 {
		return errors.New("environment: " + strings.Join(sortedCopy(probs), "; "))
	}
	return nil
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func walkEnv(v reflect.Value, prefix string, fn func(name string, v reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := prefix + strings.ToUpper(yamlKey(f))
		fv := v.Field(i)
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type != durationType:
			walkEnv(fv, name+"_", fn)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			// Lists of structs have their own variable (INDEXPILOT_TARGETS).
		default:
			fn(EnvPrefix+name, fv)
		}
	}
}

func setFromString(v reflect.Value, raw string) error {
	if v.Type() == durationType {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("%q is not a duration", raw)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("%q is not a boolean", raw)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", raw)
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", raw)
		}
		v.SetFloat(f)
	case reflect.Slice:
		var items []string
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

func parseTargets(raw string) ([]Target, error) {
	var out []Target
	for _, part := range strings.FieldsFunc(raw, func(r rune) bool { return r == ';' || r == '\n' }) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, dsn, ok := strings.Cut(part, "=")
		if !ok || name == "" || dsn == "" {
			return nil, fmt.Errorf("entry %d is not name=dsn", len(out)+1)
		}
		out = append(out, Target{Name: strings.TrimSpace(name), DSN: strings.TrimSpace(dsn)})
	}
	return out, nil
}
