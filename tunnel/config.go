package tunnel

import "log/slog"

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
}
