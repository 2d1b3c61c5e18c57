package wireguard

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/weftnet/weft/tunnel"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// embedded is an in-process wireguard-go device with its UAPI socket
// (/var/run/wireguard/<name>.sock), set up exactly as wireguard-go's main.go
// does, so that wg(8) and wgctrl drive it like a kernel device.
//
// wireguard-go opens its TUN, netlink and UDP sockets from its own
// goroutines, on whatever OS thread they run: every unlocked thread of the
// process must be in the node's network namespace. The device lives only
// as long as the process; when it exits, the interface and its routes go.
type embedded struct {
	name string
	dev  *device.Device
	uapi net.Listener
	done chan struct{} // closed by close: session starts stop retrying
	wg   sync.WaitGroup

	readMu sync.Mutex   // guards text
	text   bytes.Buffer // the last read's UAPI text, kept for the next (uapi.go)
}

// startEmbedded starts the device; mem, if not nil, is told first, as the
// device allocates its receive buffers (about 400 of 64 KiB) when it comes
// up.
func startEmbedded(name string, mtu int, log *slog.Logger, mem tunnel.ProcessMemory) (*embedded, error) {
	if mem != nil {
		mem.DeviceStarting()
	}
	tdev, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("failed to create TUN device %s: %w", name, err)
	}
	if real, err := tdev.Name(); err == nil && real != name {
		tdev.Close()
		return nil, fmt.Errorf("TUN device came up as %s, not %s", real, name)
	}
	// As wireguard-go's own main.go does, verbose logging is a no-op unless
	// it is wanted: the device calls it on its packet paths, and formatting
	// a message nobody reads costs throughput.
	logger := &device.Logger{
		Verbosef: device.DiscardLogf,
		Errorf:   newErrorLog(log).Errorf,
	}
	if log.Enabled(context.Background(), slog.LevelDebug) {
		logger.Verbosef = func(format string, args ...any) { log.Debug(fmt.Sprintf(format, args...)) }
	}
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), logger) // owns tdev now

	f, err := ipc.UAPIOpen(name)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("failed to open UAPI socket for %s: %w", name, err)
	}
	l, err := ipc.UAPIListen(name, f)
	f.Close() // UAPIListen holds its own copy of the descriptor
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("failed to listen on UAPI socket for %s: %w", name, err)
	}
	e := &embedded{name: name, dev: dev, uapi: l, done: make(chan struct{})}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed, or the socket file was removed
			}
			go dev.IpcHandle(c)
		}
	}()
	return e, nil
}

// startSessions starts a new session with each of keys: it drops the
// peer's current keys (a restarted peer no longer has them) and sends a
// handshake initiation now, from inside the device, then again after each
// of sessionRetries until the peer has completed a handshake since.
//
// A kernel device is warmed with a keepalive pulse (dataplane.WarmPeers);
// here that pulse would stage a packet in a 64 KiB message buffer, held
// until the handshake completes — or, for a peer that never answers, until
// WireGuard gives up 90 s later: 32 MiB for 500 unreachable peers. An
// initiation stages nothing; the peer's response is confirmed by the
// keepalive WireGuard sends when it completes a handshake it initiated.
//
// The retries are for the first initiation lost because the other end had
// not added this node as a peer yet: both ends add each other when gossip
// tells them, in either order, and a restarted node is still coming up when
// the others hear of it. WireGuard itself sends at most one initiation per
// 5 s (RekeyTimeout), so without them such a loss cost 5 s of traffic.
// Dropping the keys also lifts that limit for the retry.
func (e *embedded) startSessions(keys []wgtypes.Key) {
	if len(keys) == 0 {
		return
	}
	start := time.Now()
	e.initiate(keys)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		pending := slices.Clone(keys)
		for _, d := range sessionRetries {
			t := time.NewTimer(d)
			select {
			case <-e.done:
				t.Stop()
				return
			case <-t.C:
			}
			if pending = e.withoutHandshakeSince(pending, start); len(pending) == 0 {
				return
			}
			e.initiate(pending)
		}
	}()
}

// sessionRetries are the waits between a session start's initiations: long
// enough for a handshake to complete across a region before the next one
// replaces it, and over in under 4 s, after which WireGuard's own
// retransmission (5 s after the last) takes over.
var sessionRetries = []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}

// initiate drops each peer's current keys and sends it a handshake
// initiation.
func (e *embedded) initiate(keys []wgtypes.Key) {
	for _, k := range keys {
		if p := e.dev.LookupPeer(device.NoisePublicKey(k)); p != nil {
			p.ExpireCurrentKeypairs()
			_ = p.SendHandshakeInitiation(false) // failures are logged by the device and retried by its timers
		}
	}
}

// withoutHandshakeSince returns the keys whose peer is still on the device
// and has not completed a handshake since t.
func (e *embedded) withoutHandshakeSince(keys []wgtypes.Key, t time.Time) []wgtypes.Key {
	dev, err := e.read(e.name)
	if err != nil {
		return nil // closed; nothing to retry
	}
	shook := make(map[wgtypes.Key]bool, len(keys))
	for _, p := range dev.Peers {
		shook[p.PublicKey] = !p.LastHandshakeTime.Before(t)
	}
	return slices.DeleteFunc(keys, func(k wgtypes.Key) bool {
		done, ok := shook[k]
		return !ok || done
	})
}

// close removes the UAPI socket and stops the device, which deletes the
// interface and every route through it.
func (e *embedded) close() {
	close(e.done)
	e.uapi.Close()
	e.wg.Wait()
	e.dev.Close()
}
