package build

import "encoding/json"

// planUses reports whether an EXPLAIN (FORMAT JSON) plan has a node on one
// of the indexes names.
func planUses(plan []byte, names map[string]bool) bool {
	var v any
	if err := json.Unmarshal(plan, &v); err != nil {
		return false
	}
	var walk func(any) bool
	walk = func(n any) bool {
		switch t := n.(type) {
		case map[string]any:
			if s, ok := t["Index Name"].(string); ok && names[s] {
				return true
			}
			for _, c := range t {
				if walk(c) {
					return true
				}
			}
		case []any:
			for _, c := range t {
				if walk(c) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}
