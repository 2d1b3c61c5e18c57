package wireguard

import (
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// errorWindow is how long the embedded device's errors of one kind are
// logged once and then counted.
const errorWindow = time.Minute

// errorLog is the embedded device's error log. wireguard-go logs an error
// for every packet it fails to send: for a peer whose endpoint is
// unreachable, every handshake attempt, every 5 s for 90 s, and again with
// the next packet for it. With 500 such peers that was 6,620 lines in a
// minute and a half. Each kind of error (wireguard-go's format string) is
// logged in full the first time in a window of errorWindow; the rest of the
// window's errors of that kind are counted, not formatted, and the count is
// logged when the window closes, with the first one's text.
type errorLog struct {
	log    *slog.Logger
	window time.Duration
	now    func() time.Time
	after  func(time.Duration, func()) // time.AfterFunc; tests replace it

	mu    sync.Mutex
	kinds map[string]*errorKind // by format string: wireguard-go has a few dozen
}

type errorKind struct {
	opened     time.Time // when the window opened; zero when none is open
	first      string    // the error logged when it opened
	suppressed int       // errors of this kind since, not logged
	closing    bool      // the window's close is scheduled
}

func newErrorLog(log *slog.Logger) *errorLog {
	return &errorLog{
		log:    log,
		window: errorWindow,
		now:    time.Now,
		after:  func(d time.Duration, f func()) { time.AfterFunc(d, f) },
		kinds:  map[string]*errorKind{},
	}
}

// Errorf is device.Logger's Errorf.
func (l *errorLog) Errorf(format string, args ...any) {
	now := l.now()
	l.mu.Lock()
	k := l.kinds[format]
	if k == nil {
		k = &errorKind{}
		l.kinds[format] = k
	}
	if !k.opened.IsZero() && now.Sub(k.opened) < l.window {
		k.suppressed++
		if !k.closing {
			k.closing = true
			l.after(k.opened.Add(l.window).Sub(now), func() { l.close(format) })
		}
		l.mu.Unlock()
		return
	}
	msg := fmt.Sprintf(format, args...)
	k.opened, k.first, k.suppressed = now, msg, 0
	l.mu.Unlock()
	l.log.Error(msg)
}

// close ends format's window and logs how many of its errors went unlogged.
func (l *errorLog) close(format string) {
	l.mu.Lock()
	k := l.kinds[format]
	n, first := k.suppressed, k.first
	*k = errorKind{}
	l.mu.Unlock()
	if n > 0 {
		l.log.Error("more device errors like this one were not logged", "count", n, "within", l.window, "first", first)
	}
}
