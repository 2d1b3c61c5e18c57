package wireguard

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/weftnet/weft/tunnel"
	"github.com/weftnet/weft/tunnel/internal/dataplane"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// DeviceConfig describes a standalone WireGuard device.
type DeviceConfig struct {
	Name    string
	Port    int
	KeyFile string
	// Address is the device's one global address, held as a host address.
	Address netip.Addr
	MTU     int
	Logger  *slog.Logger
}

// Device is a WireGuard device whose peers and routes the caller plans in
// full, unlike Backend, which plans one peer per node: the peering
// gateway's device, whose peers are other clusters' gateways. It is a
// kernel device when the kernel has WireGuard, else embedded wireguard-go,
// driven through wgctrl either way. Safe for concurrent use.
type Device struct {
	cfg DeviceConfig
	key wgtypes.Key
	log *slog.Logger

	mu        sync.Mutex
	kernel    bool
	emb       *embedded
	wg        dataplane.WireGuard
	linkIndex int
	lastSet   map[wgtypes.Key]netip.AddrPort
	closed    bool
}

// OpenDevice creates (or adopts) the device, sets its key, port, address
// and MTU, and brings it up with no peers.
func OpenDevice(cfg DeviceConfig) (*Device, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	key, err := LoadOrCreateKey(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	d := &Device{cfg: cfg, key: key, log: cfg.Logger.With("device", cfg.Name)}
	if err := d.ensureLocked(); err != nil {
		d.closeLocked(true)
		return nil, err
	}
	return d, nil
}

// PublicKey is the device's public key.
func (d *Device) PublicKey() wgtypes.Key { return d.key.PublicKey() }

// ensureLocked creates the device if it is missing and restores its key,
// port, address, MTU and up state.
func (d *Device) ensureLocked() error {
	if d.emb == nil {
		kernel, emb, err := createDevice(d.cfg.Name, d.cfg.MTU, d.log, nil)
		if err != nil {
			return err
		}
		d.kernel, d.emb = kernel, emb
	}
	if d.wg == nil {
		wg, err := wgctrl.New()
		if err != nil {
			return fmt.Errorf("failed to open wgctrl client: %w", err)
		}
		d.wg = wg
	}
	dev, err := d.wg.Device(d.cfg.Name)
	if err != nil {
		return fmt.Errorf("failed to read WireGuard device %s: %w", d.cfg.Name, err)
	}
	if dev.PrivateKey != d.key || dev.ListenPort != d.cfg.Port {
		key, port := d.key, d.cfg.Port
		if err := d.wg.ConfigureDevice(d.cfg.Name, wgtypes.Config{PrivateKey: &key, ListenPort: &port}); err != nil {
			return fmt.Errorf("failed to set key and listen port %d on %s: %w", port, d.cfg.Name, err)
		}
	}
	link, err := netlink.LinkByName(d.cfg.Name)
	if err != nil {
		return fmt.Errorf("failed to look up interface %s: %w", d.cfg.Name, err)
	}
	if err := dataplane.ConfigureLink(link, d.cfg.Address, d.cfg.MTU); err != nil {
		return err
	}
	d.linkIndex = link.Attrs().Index
	return nil
}

// Apply repairs the device and makes its peers and the weft routes through
// it exactly peers and routes.
func (d *Device) Apply(peers []tunnel.WGPeer, routes []tunnel.Route) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if d.kernel {
		if err := d.recreateKernelLocked(); err != nil {
			return err
		}
	}
	if err := d.ensureLocked(); err != nil {
		return err
	}
	var errs []error
	lastSet, err := dataplane.SyncWGPeers(d.wg, d.cfg.Name, peers, d.lastSet)
	d.lastSet = lastSet
	if err != nil {
		errs = append(errs, err)
	}
	if err := dataplane.SyncRoutes(dataplane.Netlink{}, d.linkIndex, routes); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// recreateKernelLocked notices a kernel device deleted by hand; the next
// ensureLocked creates it again.
func (d *Device) recreateKernelLocked() error {
	if _, err := netlink.LinkByName(d.cfg.Name); err != nil {
		if !dataplane.IsNotFound(err) {
			return fmt.Errorf("failed to look up interface %s: %w", d.cfg.Name, err)
		}
		d.log.Warn("WireGuard device was deleted, re-creating it")
		d.lastSet = nil
	}
	return nil
}

// Peers reads the device's peers with their counters.
func (d *Device) Peers() ([]wgtypes.Peer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	dev, err := d.wg.Device(d.cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("failed to read WireGuard device %s: %w", d.cfg.Name, err)
	}
	return dev.Peers, nil
}

// Close stops the device. remove=true deletes it and its routes; an
// embedded device goes with the process either way.
func (d *Device) Close(remove bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closeLocked(remove)
}

func (d *Device) closeLocked(remove bool) error {
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	if remove && d.linkIndex != 0 {
		if err := dataplane.SyncRoutes(dataplane.Netlink{}, d.linkIndex, nil); err != nil {
			errs = append(errs, err)
		}
	}
	if err := closeDevice(d.cfg.Name, d.kernel, d.emb, remove); err != nil {
		errs = append(errs, err)
	}
	d.emb = nil
	if d.wg != nil {
		if err := d.wg.Close(); err != nil {
			errs = append(errs, fmt.Errorf("failed to close wgctrl client: %w", err))
		}
	}
	return errors.Join(errs...)
}
