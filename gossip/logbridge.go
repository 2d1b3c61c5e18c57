package gossip

import (
	"context"
	"log/slog"
	"strings"
)

// logBridge receives memberlist's log lines ("[LEVEL] memberlist: text")
// and forwards them to slog. Lines that report a packet or stream this node
// could not decrypt (a peer with another key, or without encryption) are
// counted through onDecryptFailure and raised to Warn.
type logBridge struct {
	log              *slog.Logger
	onDecryptFailure func()
}

func (b *logBridge) Write(p []byte) (int, error) {
	for line := range strings.SplitSeq(strings.TrimRight(string(p), "\n"), "\n") {
		level, msg := parseMemberlistLine(line)
		if isDecryptFailure(msg) {
			b.onDecryptFailure()
			level = max(level, slog.LevelWarn)
		}
		b.log.Log(context.Background(), level, msg)
	}
	return len(p), nil
}

func parseMemberlistLine(line string) (slog.Level, string) {
	line = strings.TrimSpace(line)
	level := slog.LevelInfo
	if rest, ok := strings.CutPrefix(line, "["); ok {
		if tag, msg, ok := strings.Cut(rest, "]"); ok {
			switch tag {
			case "DEBUG", "TRACE":
				level = slog.LevelDebug
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			line = strings.TrimSpace(msg)
		}
	}
	return level, line
}

func isDecryptFailure(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "decrypt") ||
		strings.Contains(m, "remote state is encrypted") ||
		strings.Contains(m, "remote state is not encrypted") ||
		strings.Contains(m, "unsupported encryption version")
}
