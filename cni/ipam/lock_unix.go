//go:build unix

package ipam

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ErrLockTimeout is returned when the store's lock stays held by someone
// else for longer than Store.LockTimeout.
var ErrLockTimeout = errors.New("timed out waiting for the IPAM lock")

// lockFile takes an exclusive flock on path, creating the file if needed,
// and returns the function that releases it. flock locks belong to the open
// file description, so two goroutines of one process exclude each other as
// well as two processes do. The kernel drops the lock if the process dies.
func lockFile(path string, timeout time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to open lock file %s: %w", path, err)
	}
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() {
				_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("failed to lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w %s after %v", ErrLockTimeout, path, timeout)
		}
		time.Sleep(wait)
		if wait < 8*time.Millisecond {
			wait *= 2
		}
	}
}
