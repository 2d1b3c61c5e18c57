package gossip

import (
	"log"
	"log/slog"
	"sync/atomic"
	"testing"
)

func TestLogBridge(t *testing.T) {
	rec := newRecorder()
	var decrypt atomic.Int64
	l := log.New(&logBridge{log: slog.New(rec), onDecryptFailure: func() { decrypt.Add(1) }}, "", 0)

	l.Printf("[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message 127.0.0.1:5")
	l.Printf("[ERR] memberlist: failed to receive: No installed keys could decrypt the message from=1.2.3.4:7946")
	l.Printf("[DEBUG] memberlist: failed to join 1.2.3.4:7946: remote state is encrypted and encryption is not configured")
	l.Printf("[ERR] memberlist: failed to receive: encryption is configured but remote state is not encrypted")
	l.Printf("[WARN] memberlist: Binding to public address without encryption!")
	l.Printf("[INFO] memberlist: Suspect node-3 has failed, no acks received")
	l.Printf("no level at all")

	if got := decrypt.Load(); got != 4 {
		t.Errorf("decrypt failures = %d, want 4", got)
	}
	if got := len(rec.find(slog.LevelWarn, "memberlist: failed to join 1.2.3.4:7946: remote state is encrypted and encryption is not configured")); got != 1 {
		t.Errorf("decrypt failure at debug level was not raised to warn")
	}
	if got := len(rec.find(slog.LevelError, "memberlist: Decrypt packet failed: no installed keys could decrypt the message 127.0.0.1:5")); got != 1 {
		t.Errorf("ERR line not logged at error")
	}
	if got := len(rec.find(slog.LevelInfo, "no level at all")); got != 1 {
		t.Errorf("unprefixed line not logged at info")
	}
}
