// Package ipam is weft-cni's address store: it hands out pod addresses from
// the node's block and remembers which attachment holds which address.
//
// Design note. Every plugin invocation is a separate process, so all state
// lives on disk under one directory:
//
//	<dir>/lock              empty file; an exclusive flock(2) on it guards
//	                        every read-modify-write of the state file
//	<dir>/allocations.json  {"block", "last", "allocations": {ip: holder}}
//
//	<dir>/boot              the kernel boot ID (/proc/sys/kernel/random/boot_id)
//	                        of the boot that last wrote allocations.json
//
// A transaction takes the lock, reads allocations.json, changes it in
// memory, writes it to a temporary file and renames it over the old one,
// then drops the lock. The lock is held only for that short file work,
// never across netlink calls.
//
// Durability. The allocations describe pods, and no pod survives the boot
// it was created in: its network namespace and veth die with the kernel.
// So the table only has to be intact, never durable across a host crash,
// and the hot path does not fsync. A plugin process that dies mid-write
// leaves the old or the new file (rename is atomic and the page cache
// survives it). Only a host crash can leave an unsynced file torn or
// empty, and then every pod it describes is gone too: a table that does
// not parse is started over from empty when <dir>/boot (written and
// fsynced once per boot, before the first unsynced write) names an
// earlier boot. A table that does not parse within the boot that wrote
// it is never discarded: that would hand out addresses live pods use.
//
// An attachment (containerID, ifname) holds at most one address. Addresses
// are handed out round-robin from the address after "last", so a freed
// address is not reused until the rest of the block has been. When the
// node's block changes, allocations from the old block stay recorded (their
// pods still use them) until DEL or GC releases them, but are never handed
// out again, and the cursor restarts in the new block.
package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

const (
	lockName  = "lock"
	stateName = "allocations.json"
	bootName  = "boot"
)

// bootIDPath is where the kernel publishes the ID of the running boot; a
// variable so tests can simulate a reboot.
var bootIDPath = "/proc/sys/kernel/random/boot_id"

// Attachment identifies one interface of one container, as the CNI spec
// does: (CNI_CONTAINERID, CNI_IFNAME).
type Attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
}

func (a Attachment) String() string { return a.ContainerID + "/" + a.IfName }

// Allocation is one reserved address and its holder.
type Allocation struct {
	IP netip.Addr `json:"-"`
	Attachment
	// Network is the CNI network name of the ADD that made the
	// reservation; GC only considers allocations of its own network.
	Network string `json:"network"`
}

// file is the on-disk form of allocations.json.
type file struct {
	// Block is the block the cursor Last belongs to.
	Block netip.Prefix `json:"block,omitzero"`
	// Last is the most recently handed-out address.
	Last        netip.Addr                `json:"last,omitzero"`
	Allocations map[netip.Addr]Allocation `json:"allocations"`
}

// Store is a file-backed allocation store. It is safe for concurrent use by
// many goroutines and many processes that open the same directory.
type Store struct {
	dir string
	// LockTimeout bounds how long a transaction waits for the lock.
	LockTimeout time.Duration

	// bootMarked is set once this Store has seen <dir>/boot name the
	// running boot; only touched under the file lock.
	bootMarked bool
}

// Open returns the store in dir, creating the directory if needed.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("ipam: empty data directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create IPAM directory %s: %w", dir, err)
	}
	return &Store{dir: dir, LockTimeout: 30 * time.Second}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Allocate reserves an address of block for a. If a already holds an
// address of block it is returned with fresh == false (a repeated ADD gets
// the same address and must not release it on failure). A reservation a
// holds in another (old) block is dropped and a new address allocated.
func (s *Store) Allocate(block netip.Prefix, gateway netip.Addr, a Attachment, network string) (ip netip.Addr, fresh bool, err error) {
	if err := CheckBlock(block, gateway); err != nil {
		return netip.Addr{}, false, err
	}
	block = block.Masked()
	err = s.update(func(f *file) (bool, error) {
		dirty := false
		for addr, al := range f.Allocations {
			if al.Attachment != a {
				continue
			}
			if Assignable(block, gateway, addr) {
				ip = addr
				return false, nil
			}
			delete(f.Allocations, addr) // stale: from an old block
			dirty = true
		}
		last := f.Last
		if f.Block != block {
			last = netip.Addr{}
		}
		next, err := pick(block, gateway, last, func(x netip.Addr) bool {
			_, ok := f.Allocations[x]
			return ok
		})
		if err != nil {
			return dirty, err
		}
		f.Allocations[next] = Allocation{IP: next, Attachment: a, Network: network}
		f.Block, f.Last = block, next
		ip, fresh = next, true
		return true, nil
	})
	if err != nil {
		return netip.Addr{}, false, fmt.Errorf("failed to allocate an address for %v from %v: %w", a, block, err)
	}
	return ip, fresh, nil
}

// Release frees whatever a holds. If only is valid, the reservation is
// freed only when it is that address (a failed ADD rolls back exactly what
// it took). Releasing nothing is not an error; released lists what was
// freed.
func (s *Store) Release(a Attachment, only netip.Addr) (released []netip.Addr, err error) {
	err = s.update(func(f *file) (bool, error) {
		for addr, al := range f.Allocations {
			if al.Attachment == a && (!only.IsValid() || only == addr) {
				delete(f.Allocations, addr)
				released = append(released, addr)
			}
		}
		return len(released) > 0, nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to release the address of %v: %w", a, err)
	}
	return released, nil
}

// Lookup returns the allocation a holds, if any.
func (s *Store) Lookup(a Attachment) (Allocation, bool, error) {
	var out Allocation
	var found bool
	err := s.update(func(f *file) (bool, error) {
		for _, al := range f.Allocations {
			if al.Attachment == a {
				out, found = al, true
			}
		}
		return false, nil
	})
	return out, found, err
}

// List returns every allocation, sorted by address.
func (s *Store) List() ([]Allocation, error) {
	var out []Allocation
	err := s.update(func(f *file) (bool, error) {
		for _, al := range f.Allocations {
			out = append(out, al)
		}
		return false, nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].IP.Less(out[j].IP) })
	return out, err
}

// GC releases every allocation of network whose attachment is not in
// keep, and returns what it released, sorted by address.
func (s *Store) GC(network string, keep map[Attachment]bool) ([]Allocation, error) {
	var gone []Allocation
	err := s.update(func(f *file) (bool, error) {
		for addr, al := range f.Allocations {
			if al.Network == network && !keep[al.Attachment] {
				delete(f.Allocations, addr)
				gone = append(gone, al)
			}
		}
		return len(gone) > 0, nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to garbage-collect allocations of network %q: %w", network, err)
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].IP.Less(gone[j].IP) })
	return gone, nil
}

// Free returns how many addresses of block can still be allocated.
func (s *Store) Free(block netip.Prefix, gateway netip.Addr) (int, error) {
	n := 0
	err := s.update(func(f *file) (bool, error) {
		n = countFree(block, gateway, func(x netip.Addr) bool {
			_, ok := f.Allocations[x]
			return ok
		})
		return false, nil
	})
	return n, err
}

// update runs fn on the state file under the lock and writes the file
// back when fn reports a change. fn's error is returned as is, after any
// change it made was saved.
func (s *Store) update(fn func(*file) (dirty bool, err error)) error {
	unlock, err := lockFile(filepath.Join(s.dir, lockName), s.LockTimeout)
	if err != nil {
		return err
	}
	defer unlock()

	f, err := s.readLocked()
	if err != nil {
		return err
	}
	dirty, fnErr := fn(f)
	if dirty {
		if err := s.writeLocked(f); err != nil {
			return err
		}
	}
	return fnErr
}

func (s *Store) readLocked() (*file, error) {
	path := filepath.Join(s.dir, stateName)
	f := &file{Allocations: map[netip.Addr]Allocation{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, f); err != nil {
		// Never start over from an empty table while pods of the boot
		// that wrote it may live: that would hand out their addresses.
		if s.writtenInEarlierBoot() {
			return &file{Allocations: map[netip.Addr]Allocation{}}, nil
		}
		return nil, fmt.Errorf("failed to parse %s (fix or remove it by hand): %w", path, err)
	}
	if f.Allocations == nil {
		f.Allocations = map[netip.Addr]Allocation{}
	}
	for addr, al := range f.Allocations {
		al.IP = addr
		f.Allocations[addr] = al
	}
	return f, nil
}

func (s *Store) writeLocked(f *file) error {
	// Not fsynced once the boot is marked: see the package note on
	// durability. Where the boot ID cannot be read, every write is synced
	// as before.
	sync := s.markBootLocked() != nil
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("failed to encode allocations: %w", err)
	}
	return replaceFile(s.dir, stateName, append(b, '\n'), sync)
}

// replaceFile writes data to dir/name through a temporary file and a
// rename; with sync, the data and the rename are made durable.
func replaceFile(dir, name string, data []byte, sync bool) error {
	path := filepath.Join(dir, name)
	tmp, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return fmt.Errorf("failed to create a temporary file for %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write %s: %w", tmp.Name(), err)
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return fmt.Errorf("failed to sync %s: %w", tmp.Name(), err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("failed to close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("failed to replace %s: %w", path, err)
	}
	if sync {
		d, err := os.Open(dir)
		if err != nil {
			return fmt.Errorf("failed to open %s: %w", dir, err)
		}
		defer d.Close()
		if err := d.Sync(); err != nil {
			return fmt.Errorf("failed to sync %s: %w", dir, err)
		}
	}
	return nil
}

func currentBootID() (string, error) {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return "", fmt.Errorf("failed to read the boot ID: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("%s is empty", bootIDPath)
	}
	return id, nil
}

// markBootLocked makes <dir>/boot durably name the running boot before
// the first unsynced write of this boot. Once per boot it costs an fsync;
// after that one small read per Store.
func (s *Store) markBootLocked() error {
	if s.bootMarked {
		return nil
	}
	id, err := currentBootID()
	if err != nil {
		return err
	}
	if b, err := os.ReadFile(filepath.Join(s.dir, bootName)); err == nil && strings.TrimSpace(string(b)) == id {
		s.bootMarked = true
		return nil
	}
	if err := replaceFile(s.dir, bootName, []byte(id+"\n"), true); err != nil {
		return err
	}
	s.bootMarked = true
	return nil
}

// writtenInEarlierBoot reports whether <dir>/boot names a boot other than
// the running one. A missing marker (a store written by a version that
// fsynced every write) or an unreadable boot ID count as "no".
func (s *Store) writtenInEarlierBoot() bool {
	b, err := os.ReadFile(filepath.Join(s.dir, bootName))
	if err != nil {
		return false
	}
	id, err := currentBootID()
	return err == nil && strings.TrimSpace(string(b)) != id
}
