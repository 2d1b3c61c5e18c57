package wireguard

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The first error of a kind in a window is logged in full, the rest of the
// window's are counted and reported when it closes, and each kind has its
// own window.
func TestErrorLog(t *testing.T) {
	var out bytes.Buffer
	l := newErrorLog(slog.New(slog.NewTextHandler(&out, nil)))
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	var pending []func()
	var delays []time.Duration
	l.after = func(d time.Duration, f func()) { delays, pending = append(delays, d), append(pending, f) }
	lines := func() []string {
		s := strings.TrimSpace(out.String())
		out.Reset()
		if s == "" {
			return nil
		}
		return strings.Split(s, "\n")
	}

	const send = "%v - Failed to send handshake initiation: %v"
	const recv = "Failed to receive %s packet: %v"
	l.Errorf(send, "peer(a)", "network is unreachable")
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "peer(a) - Failed to send handshake initiation: network is unreachable") {
		t.Fatalf("first error: logged %q", got)
	}
	for i := range 500 {
		now = now.Add(10 * time.Millisecond)
		l.Errorf(send, "peer(b)", i)
	}
	if got := lines(); got != nil {
		t.Fatalf("repeats within the window were logged: %d lines, first %q", len(got), got[0])
	}
	if len(pending) != 1 || delays[0] != errorWindow-10*time.Millisecond {
		t.Fatalf("window close: %d scheduled (delays %v), want 1 at the window's end", len(pending), delays)
	}

	// Another kind is not held back by the first one's window.
	l.Errorf(recv, "v4", "closed")
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "Failed to receive v4 packet: closed") {
		t.Fatalf("another kind: logged %q", got)
	}

	now = time.Unix(1000, 0).Add(errorWindow)
	pending[0]()
	got := lines()
	if len(got) != 1 || !strings.Contains(got[0], "count=500") || !strings.Contains(got[0], "peer(a) - Failed to send handshake initiation") {
		t.Fatalf("window close: logged %q, want the 500 not logged, like the first", got)
	}

	// After the window, the next one is logged in full again; a window
	// with nothing held back closes without a line.
	l.Errorf(send, "peer(c)", "network is unreachable")
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "peer(c)") {
		t.Fatalf("after the window: logged %q", got)
	}
	l.close(recv)
	if got := lines(); got != nil {
		t.Fatalf("closing a window with nothing held back logged %q", got)
	}
}
