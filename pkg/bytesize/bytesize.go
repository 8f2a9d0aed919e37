// Package bytesize renders byte counts for people: the one way sizes are
// written in what IndexPilot shows (the CLI's tables, the dashboard, the
// sentences the scorer records for a held candidate).
package bytesize

import "fmt"

// Human renders n bytes with a binary unit: "512 B", "4 KiB", "4.3 MiB",
// "1.2 GiB". KiB are whole (a tenth of one is noise next to an index's
// size); MiB and GiB keep one decimal. A negative n is shown in bytes.
func Human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
