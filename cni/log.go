package cni

import (
	"log/slog"
	"os"
)

// openLog returns the plugin's logger: JSON lines appended to path, or a
// logger that drops everything when path is empty or cannot be opened (a
// logging problem must not fail a pod's network setup).
func openLog(path string) (*slog.Logger, func()) {
	if path == "" {
		return slog.New(slog.DiscardHandler), func() {}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return slog.New(slog.DiscardHandler), func() {}
	}
	h := slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(h).With("component", "weft-cni", "pid", os.Getpid()), func() { f.Close() }
}
