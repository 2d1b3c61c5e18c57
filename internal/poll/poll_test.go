package poll

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB that records a failure instead of ending the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestEventually(t *testing.T) {
	var calls atomic.Int32
	Eventually(t, 5*time.Second, time.Millisecond, "third call", func() error {
		if calls.Add(1) < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n := calls.Load(); n != 3 {
		t.Errorf("f called %d times, want 3", n)
	}
	r := &recorder{TB: t}
	Eventually(r, 10*time.Millisecond, time.Millisecond, "never", func() error { return errors.New("no") })
	if !strings.Contains(r.failed, "never") || !strings.Contains(r.failed, "no") {
		t.Errorf("a condition that never holds failed with %q, want what and the last error", r.failed)
	}
	r = &recorder{TB: t}
	True(r, 10*time.Millisecond, time.Millisecond, "never", func() bool { return false })
	if r.failed == "" {
		t.Error("True: a condition that never holds did not fail the test")
	}
}
