// Package wireguard is the encrypted tunnel backend: one WireGuard device
// (kernel module when the kernel has it, otherwise an embedded wireguard-go
// device) with one peer per node and one route per peer pod block.
//
// Concurrency: one mutex serialises Setup, Apply, Stats and Close. Apply
// holds it across netlink and wgctrl calls; that is fine because the agent
// loop is its only caller and nothing else waits on it.
//
// Namespaces: every OS call is made in the network namespace of the calling
// thread, and the embedded device's own goroutines run on arbitrary threads.
// The agent process must therefore live in the node's namespace as a whole;
// code that enters other namespaces must lock its OS thread while it does.
package wireguard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/weftnet/weft/tunnel"
	"github.com/weftnet/weft/tunnel/internal/dataplane"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Defaults for zero Config fields.
const (
	DefaultInterface = "weft0"
	DefaultPort      = 51820
	DefaultKeyFile   = "/var/lib/weft/wireguard.key"
)

// ErrClosed is returned by calls after Close.
var ErrClosed = errors.New("wireguard backend is closed")

// Backend is the WireGuard tunnel.Backend.
type Backend struct {
	name    string
	port    int
	keyFile string
	log     *slog.Logger
	mem     tunnel.ProcessMemory // told of an embedded device's bulk allocations; nil: nobody

	// OS hooks, replaced in unit tests.
	routes dataplane.Routes
	newWG  func() (dataplane.WireGuard, error)

	mu        sync.Mutex
	key       wgtypes.Key
	local     tunnel.Local
	mtu       int
	setup     bool
	closed    bool
	kernel    bool                   // device is a kernel WireGuard link
	emb       *embedded              // non-nil when running wireguard-go in process
	wg        dataplane.WireGuard    // wgctrl client, opened by Setup
	linkIndex int                    // device ifindex, refreshed every Apply
	names     map[wgtypes.Key]string // peer key → node name, for Stats
	lastSet   map[wgtypes.Key]netip.AddrPort
	boots     map[wgtypes.Key]uint32 // peer key → Boot at the last Apply
}

var _ tunnel.Backend = (*Backend)(nil)

// New validates cfg and returns an unstarted backend; Setup creates the
// device. Zero fields take the defaults above.
func New(cfg tunnel.Config) (tunnel.Backend, error) {
	cfg, log, err := cfg.Resolve("wireguard", DefaultInterface, DefaultPort)
	if err != nil {
		return nil, err
	}
	b := &Backend{
		name:    cfg.Interface,
		port:    cfg.Port,
		keyFile: cfg.KeyFile,
		routes:  dataplane.Netlink{},
		newWG:   func() (dataplane.WireGuard, error) { return wgctrl.New() },
		log:     log,
		mem:     cfg.Memory,
	}
	if b.keyFile == "" {
		b.keyFile = DefaultKeyFile
	}
	return b, nil
}

// Name returns "wireguard".
func (b *Backend) Name() string { return "wireguard" }

// Embedded reports whether the device is an embedded wireguard-go device
// in this process (known after Setup).
func (b *Backend) Embedded() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.emb != nil
}

// Overhead is 60 bytes for an IPv4 underlay, 80 for IPv6 (known after
// Setup; 60 before).
func (b *Backend) Overhead() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return overhead(b.local.UnderlayIP)
}

// overhead is UDP (8) and WireGuard's own header and tag (32) over the
// outer IP header.
func overhead(underlay netip.Addr) int { return tunnel.Overhead(underlay, 8+32) }

// Overhead is what WireGuard adds to each packet over an underlay of
// underlay's address family: a WireGuard device's MTU is the underlay MTU
// minus this.
func Overhead(underlay netip.Addr) int { return overhead(underlay) }

// Setup loads (or creates) the private key, creates or adopts the device,
// configures key and listen port through wgctrl, assigns local.Gateway as a
// host address, sets the MTU and brings the device up.
func (b *Backend) Setup(ctx context.Context, local tunnel.Local) (tunnel.Info, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return tunnel.Info{}, ErrClosed
	}
	if err := validateLocal(local); err != nil {
		return tunnel.Info{}, err
	}
	key, err := LoadOrCreateKey(b.keyFile)
	if err != nil {
		return tunnel.Info{}, err
	}
	underlayMTU := local.UnderlayMTU
	if underlayMTU == 0 {
		l, err := dataplane.UnderlayLink(local.UnderlayIP)
		if err != nil {
			return tunnel.Info{}, fmt.Errorf("failed to detect underlay MTU (set UnderlayMTU): %w", err)
		}
		underlayMTU = l.Attrs().MTU
	}
	mtu := underlayMTU - overhead(local.UnderlayIP)
	if mtu < 1280 && local.PodCIDR.Addr().Is6() || mtu < 576 {
		return tunnel.Info{}, fmt.Errorf("wireguard: underlay MTU %d leaves a tunnel MTU of %d, too small", underlayMTU, mtu)
	}

	if err := b.ensureDeviceLocked(mtu); err != nil {
		return tunnel.Info{}, err
	}
	if b.wg == nil {
		wg, err := b.newWG()
		if err != nil {
			return tunnel.Info{}, fmt.Errorf("failed to open wgctrl client: %w", err)
		}
		b.wg = wg
		if b.emb != nil {
			b.wg = embeddedClient{WireGuard: wg, name: b.name, e: b.emb}
		}
	}
	port := b.port
	if err := b.wg.ConfigureDevice(b.name, wgtypes.Config{PrivateKey: &key, ListenPort: &port}); err != nil {
		return tunnel.Info{}, fmt.Errorf("failed to set key and listen port %d on %s: %w", port, b.name, err)
	}
	b.key, b.local, b.mtu, b.setup = key, local, mtu, true
	if err := b.configureLinkLocked(); err != nil {
		return tunnel.Info{}, err
	}
	b.log.Info("wireguard device ready", "kernel", b.kernel, "mtu", mtu, "port", port,
		"publicKey", key.PublicKey().String(), "gateway", local.Gateway)
	return tunnel.Info{PublicKey: key.PublicKey().String(), Port: port, MTU: mtu}, nil
}

func validateLocal(l tunnel.Local) error {
	switch {
	case l.Name == "":
		return errors.New("tunnel setup: field Name is empty")
	case !l.UnderlayIP.IsValid():
		return errors.New("tunnel setup: field UnderlayIP is not set")
	case l.UnderlayMTU < 0:
		return fmt.Errorf("tunnel setup: field UnderlayMTU %d is negative", l.UnderlayMTU)
	case !l.PodCIDR.IsValid():
		return errors.New("tunnel setup: field PodCIDR is not a valid CIDR")
	case !l.Gateway.IsValid() || !l.PodCIDR.Contains(l.Gateway):
		return fmt.Errorf("tunnel setup: field Gateway %v is not inside PodCIDR %v", l.Gateway, l.PodCIDR)
	}
	return nil
}

// ensureDeviceLocked adopts or creates the device (createDevice).
func (b *Backend) ensureDeviceLocked(mtu int) error {
	if b.emb != nil {
		return nil
	}
	kernel, emb, err := createDevice(b.name, mtu, b.log, b.mem)
	if err != nil {
		return err
	}
	b.kernel, b.emb = kernel, emb
	return nil
}

// createDevice adopts an existing kernel WireGuard link, or creates one,
// or — when the kernel has no WireGuard — starts an embedded device.
func createDevice(name string, mtu int, log *slog.Logger, mem tunnel.ProcessMemory) (kernel bool, emb *embedded, err error) {
	link, err := netlink.LinkByName(name)
	switch {
	case err == nil && link.Type() == "wireguard":
		return true, nil, nil
	case err == nil:
		return false, nil, fmt.Errorf("interface %s exists and is a %q device, not wireguard; delete it or choose another Interface", name, link.Type())
	case !dataplane.IsNotFound(err):
		return false, nil, fmt.Errorf("failed to look up interface %s: %w", name, err)
	}
	err = netlink.LinkAdd(&netlink.Wireguard{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu}})
	if err == nil {
		return true, nil, nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) {
		return false, nil, fmt.Errorf("failed to create wireguard interface %s: %w", name, err)
	}
	log.Info("kernel has no WireGuard, starting embedded wireguard-go device", "interface", name, "reason", err.Error())
	emb, err = startEmbedded(name, mtu, log, mem)
	if err != nil {
		return false, nil, err
	}
	return false, emb, nil
}

// closeDevice stops an embedded device, or with remove deletes a kernel
// one.
func closeDevice(name string, kernel bool, emb *embedded, remove bool) error {
	if emb != nil {
		emb.close()
		return nil
	}
	if !remove || !kernel {
		return nil
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		if dataplane.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("failed to look up interface %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("failed to delete interface %s: %w", name, err)
	}
	return nil
}

func (b *Backend) configureLinkLocked() error {
	link, err := netlink.LinkByName(b.name)
	if err != nil {
		return fmt.Errorf("failed to look up interface %s: %w", b.name, err)
	}
	if err := dataplane.ConfigureLink(link, b.local.Gateway, b.mtu); err != nil {
		return err
	}
	b.linkIndex = link.Attrs().Index
	return nil
}

// Apply makes the device's peers and the routes through it match peers
// exactly, repairing drift: it re-checks the device (address, MTU, up, key,
// port), re-reads peers through wgctrl and routes from the kernel. Peers the
// planner rejects are logged and left out.
func (b *Backend) Apply(ctx context.Context, peers []tunnel.Peer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if !b.setup {
		return errors.New("wireguard: Apply before Setup")
	}
	if b.kernel {
		// A kernel device deleted by hand is re-created; an embedded one
		// cannot disappear while we hold its TUN descriptor.
		if err := b.ensureDeviceLocked(b.mtu); err != nil {
			return err
		}
	}
	if err := b.configureLinkLocked(); err != nil {
		return err
	}
	dev, err := b.ensureDeviceConfigLocked()
	if err != nil {
		return err
	}
	return b.syncDeviceLocked(peers, dev)
}

// ensureDeviceConfigLocked restores key and listen port if they drifted
// (or the kernel device was re-created), and returns the device as read,
// peers included, for syncDeviceLocked.
func (b *Backend) ensureDeviceConfigLocked() (*wgtypes.Device, error) {
	dev, err := b.wg.Device(b.name)
	if err != nil {
		return nil, fmt.Errorf("failed to read WireGuard device %s: %w", b.name, err)
	}
	if dev.PrivateKey == b.key && dev.ListenPort == b.port {
		return dev, nil
	}
	b.log.Warn("WireGuard key or listen port drifted, restoring", "listenPort", dev.ListenPort)
	key, port := b.key, b.port
	if err := b.wg.ConfigureDevice(b.name, wgtypes.Config{PrivateKey: &key, ListenPort: &port}); err != nil {
		return nil, fmt.Errorf("failed to restore key and listen port on %s: %w", b.name, err)
	}
	return dev, nil // key and port do not touch the peers read
}

// syncLocked plans and applies peers and routes; it is the part of Apply
// that unit tests drive with fakes.
func (b *Backend) syncLocked(peers []tunnel.Peer) error {
	dev, err := b.wg.Device(b.name)
	if err != nil {
		return fmt.Errorf("failed to read WireGuard device %s: %w", b.name, err)
	}
	return b.syncDeviceLocked(peers, dev)
}

// syncDeviceLocked is syncLocked with the device as just read.
func (b *Backend) syncDeviceLocked(peers []tunnel.Peer, dev *wgtypes.Device) error {
	plan := tunnel.PlanWireGuard(b.local, peers, b.port)
	for _, s := range plan.Skipped {
		b.log.Warn("not routing to peer", "peer", s.Name, "reason", s.Reason)
	}
	names := make(map[wgtypes.Key]string, len(plan.WGPeers))
	// Deriving the public key is a curve25519 multiplication: once per
	// Apply, not once per peer (that was most of a 1000-peer resync).
	self := b.key.PublicKey()
	for _, p := range plan.WGPeers {
		if p.PublicKey == self {
			continue // never our own key
		}
		names[p.PublicKey] = p.Name
	}
	// A peer publishing our own key is left out, with its routes; the
	// plan is used as it is otherwise (this runs every resync).
	wgPeers, routes := plan.WGPeers, plan.Routes
	if len(names) < len(plan.WGPeers) {
		wgPeers = make([]tunnel.WGPeer, 0, len(names))
		dropped := map[netip.Prefix]bool{}
		for _, p := range plan.WGPeers {
			if _, ok := names[p.PublicKey]; ok {
				wgPeers = append(wgPeers, p)
				continue
			}
			b.log.Warn("not routing to peer", "peer", p.Name, "reason", "publishes this node's public key")
			for _, a := range p.AllowedIPs {
				dropped[a] = true
			}
		}
		routes = make([]tunnel.Route, 0, len(plan.Routes))
		for _, r := range plan.Routes {
			if !dropped[r.Dst] {
				routes = append(routes, r)
			}
		}
	}
	b.names = names

	var errs []error
	restarted := dataplane.Restarted(self, dev, wgPeers, b.boots)
	b.boots = dataplane.BootsOf(wgPeers, b.boots)
	if len(restarted) > 0 {
		b.log.Info("peers restarted; starting new WireGuard sessions with them", "peers", b.namesOf(restarted))
		if b.emb == nil {
			// A kernel device forgets a session only with the peer:
			// taken out here, the sync below adds it back as new.
			if err := b.removePeersLocked(restarted); err != nil {
				errs = append(errs, err)
				restarted = nil
			} else {
				dev = withoutPeers(dev, restarted)
			}
		}
	}

	// Peers first, so a new route never points at a device without the
	// peer that carries its traffic; stale routes go in the same pass.
	if b.emb != nil && b.mem != nil {
		defer b.mem.AddingPeers(len(wgPeers) - len(dev.Peers))()
	}
	lastSet, err := dataplane.SyncWGPeersOf(b.wg, dev, wgPeers, b.lastSet)
	b.lastSet = lastSet
	if err != nil {
		errs = append(errs, err)
	} else {
		warm := dataplane.PeersToWarm(self, dev, wgPeers)
		if b.emb != nil {
			// The embedded device resets a restarted peer's session in
			// place, with the handshake that replaces it.
			b.emb.startSessions(append(warm, restarted...))
		} else if err := dataplane.WarmPeers(b.wg, b.name, warm); err != nil {
			b.log.Debug("could not start handshakes with new peers; traffic will", "err", err)
		}
	}
	if err := dataplane.SyncRoutes(b.routes, b.linkIndex, routes); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removePeersLocked takes keys off the device.
func (b *Backend) removePeersLocked(keys []wgtypes.Key) error {
	pcs := make([]wgtypes.PeerConfig, len(keys))
	for i, k := range keys {
		pcs[i] = wgtypes.PeerConfig{PublicKey: k, Remove: true}
	}
	if err := b.wg.ConfigureDevice(b.name, wgtypes.Config{Peers: pcs}); err != nil {
		return fmt.Errorf("failed to remove restarted peers from %s: %w", b.name, err)
	}
	return nil
}

// withoutPeers is dev as it reads once keys are removed.
func withoutPeers(dev *wgtypes.Device, keys []wgtypes.Key) *wgtypes.Device {
	cp := *dev
	cp.Peers = slices.DeleteFunc(slices.Clone(dev.Peers), func(p wgtypes.Peer) bool { return slices.Contains(keys, p.PublicKey) })
	return &cp
}

// namesOf names keys' peers for a log line.
func (b *Backend) namesOf(keys []wgtypes.Key) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		if out[i] = b.names[k]; out[i] == "" {
			out[i] = k.String()
		}
	}
	return out
}

// Stats reports each peer's endpoint, last handshake and byte counters as
// wgctrl reads them from the device.
func (b *Backend) Stats(ctx context.Context) ([]tunnel.PeerStats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if b.wg == nil {
		return nil, errors.New("wireguard: Stats before Setup")
	}
	dev, err := b.wg.Device(b.name)
	if err != nil {
		return nil, fmt.Errorf("failed to read WireGuard device %s: %w", b.name, err)
	}
	out := make([]tunnel.PeerStats, 0, len(dev.Peers))
	for _, p := range dev.Peers {
		s := tunnel.PeerStats{
			Name:    b.names[p.PublicKey],
			RxBytes: p.ReceiveBytes,
			TxBytes: p.TransmitBytes,
		}
		if s.Name == "" {
			s.Name = p.PublicKey.String()
		}
		if p.Endpoint != nil {
			s.Endpoint = p.Endpoint.String()
		}
		if !p.LastHandshakeTime.IsZero() && p.LastHandshakeTime.After(time.Unix(0, 0)) {
			s.LastHandshake = p.LastHandshakeTime
		}
		out = append(out, s)
	}
	return out, nil
}

// Close stops the backend.
//
// remove=true deletes the device (and with it the UAPI socket) and every
// route weft made through it. remove=false leaves a kernel device, its peers
// and routes in place so pods keep connectivity across an agent restart.
// An embedded wireguard-go device cannot outlive the process: Close stops
// it either way, and the kernel drops its interface and routes; the next
// agent's Setup and Apply rebuild them.
func (b *Backend) Close(remove bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	var errs []error
	if remove && b.linkIndex != 0 {
		if err := dataplane.SyncRoutes(b.routes, b.linkIndex, nil); err != nil {
			errs = append(errs, err)
		}
	}
	if err := closeDevice(b.name, b.kernel, b.emb, remove); err != nil {
		errs = append(errs, err)
	}
	b.emb = nil
	if b.wg != nil {
		if err := b.wg.Close(); err != nil {
			errs = append(errs, fmt.Errorf("failed to close wgctrl client: %w", err))
		}
	}
	return errors.Join(errs...)
}
