// Package poll is for tests that wait for something to happen elsewhere (a
// goroutine, another process, the kernel): it checks a condition at an
// interval until it holds or a deadline passes, instead of sleeping for a
// fixed time and hoping.
package poll

import (
	"testing"
	"time"
)

// Eventually calls f every interval until it returns nil, and returns how
// long that took. If timeout passes first, it fails t, naming what and f's
// last error.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %s: %v", what, timeout, err)
			return time.Since(start) // a TB whose Fatalf returns
		}
		time.Sleep(interval)
	}
}

// True is Eventually for a condition that has no error to report.
func True(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return Eventually(t, timeout, interval, what, func() error {
		if cond() {
			return nil
		}
		return errFalse
	})
}

type falseError struct{}

func (falseError) Error() string { return "still false" }

var errFalse error = falseError{}
