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
//
// Waiters block in flock(2), so the kernel hands the lock over the moment
// it is released (polling with sleeps made 50 concurrent ADDs queue for
// many milliseconds longer than the work under the lock takes). The
// blocking call runs in its own goroutine so the wait can be bounded; one
// that times out is abandoned and releases the lock as soon as it gets it.
func lockFile(path string, timeout time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to open lock file %s: %w", path, err)
	}
	release := func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}
	// The uncontended case needs no goroutine.
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return release, nil
	}
	if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
		f.Close()
		return nil, fmt.Errorf("failed to lock %s: %w", path, err)
	}
	got := make(chan error) // unbuffered: a send happens only to a receiver that is waiting
	abandon := make(chan struct{})
	go func() {
		var err error
		for {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		select {
		case got <- err:
		case <-abandon:
			if err == nil {
				release()
			} else {
				f.Close()
			}
		}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-got:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("failed to lock %s: %w", path, err)
		}
		return release, nil
	case <-timer.C:
		close(abandon)
		// The waiter may have got the lock just now and handed it over.
		select {
		case err := <-got:
			if err == nil {
				return release, nil
			}
			f.Close()
			return nil, fmt.Errorf("failed to lock %s: %w", path, err)
		default:
		}
		return nil, fmt.Errorf("%w %s after %v", ErrLockTimeout, path, timeout)
	}
}
