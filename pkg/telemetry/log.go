// Package telemetry sets up structured logging (and, later, traces and
// metrics) the same way for every stage.
package telemetry

import (
	"io"
	"log/slog"
	"strings"

	"github.com/indexpilot/indexpilot/pkg/config"
)

// NewLogger returns a slog logger writing JSON (or text) at the configured
// level, with the stage name on every record.
func NewLogger(cfg config.Log, w io.Writer, stage string) *slog.Logger {
	var lvl slog.Level
	switch strings.ToLower(cfg.Level) {
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	if cfg.Format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	l := slog.New(h)
	if stage != "" {
		l = l.With("stage", stage)
	}
	return l
}
