package tunnel

import (
	"fmt"
	"log/slog"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Config is what every backend constructor takes. Zero values mean the
// documented default.
type Config struct {
	// Interface is the device name. Default "weft0" (wireguard) or
	// "weft-vxlan" (vxlan).
	Interface string
	// Port is the UDP port. Default 51820 (wireguard) or 4789 (vxlan).
	Port int
	// KeyFile is where the WireGuard private key is kept (created 0600 on
	// first start). Default /var/lib/weft/wireguard.key. Unused by vxlan.
	KeyFile string
	// VNI is the VXLAN network identifier. Default 1. Unused by wireguard.
	VNI int
	// Logger receives the backend's logs; nil means slog.Default().
	Logger *slog.Logger
	// Memory is told when a device that lives in this process (the
	// embedded wireguard-go device) allocates in bulk; nil: nobody is.
	Memory ProcessMemory
}

// ProcessMemory is the binary's say over the process's memory when a
// backend's device lives in the process. Process-wide runtime state (the
// collector, the memory limit) is the binary's, never a backend's: the
// backend only says when it is about to allocate in bulk.
type ProcessMemory interface {
	// DeviceStarting is called before the device allocates its buffers.
	DeviceStarting()
	// AddingPeers is called before n peers are added to the device; the
	// returned func is called once they are in.
	AddingPeers(n int) (done func())
}

// Resolve fills Interface and Port with a backend's defaults, checks them
// (errors name the backend and the field) and returns the backend's logger,
// tagged with its component, backend and interface.
func (c Config) Resolve(backend, defInterface string, defPort int) (Config, *slog.Logger, error) {
	if c.Interface == "" {
		c.Interface = defInterface
	}
	if len(c.Interface) >= unix.IFNAMSIZ {
		return c, nil, fmt.Errorf("%s: field Interface %q is longer than %d bytes", backend, c.Interface, unix.IFNAMSIZ-1)
	}
	if c.Port == 0 {
		c.Port = defPort
	}
	if c.Port < 1 || c.Port > 65535 {
		return c, nil, fmt.Errorf("%s: field Port %d is out of range 1-65535", backend, c.Port)
	}
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	return c, log.With("component", "tunnel", "backend", backend, "interface", c.Interface), nil
}

// Overhead is the bytes a tunnel adds to each packet: the outer IP header
// for the underlay's family (20 for IPv4, 40 for IPv6; IPv4 while the
// underlay is not known yet) plus encap, the backend's own headers.
func Overhead(underlay netip.Addr, encap int) int {
	if underlay.IsValid() && underlay.Unmap().Is6() {
		return 40 + encap
	}
	return 20 + encap
}
