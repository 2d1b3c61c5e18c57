//go:build !linux

package loadbalancer

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
)

// Announcer answers ARP for load-balancer addresses; Linux only.
type Announcer struct{}

// NewAnnouncer fails: announcing needs Linux packet sockets.
func NewAnnouncer(iface string, log *slog.Logger) (*Announcer, error) {
	return nil, errors.New("load-balancer announcement (ARP on a packet socket) is supported on Linux only")
}

func (a *Announcer) MAC() net.HardwareAddr  { return nil }
func (a *Announcer) Instrument(m *Metrics)  {}
func (a *Announcer) Set(addrs []netip.Addr) {}
func (a *Announcer) Addrs() []netip.Addr    { return nil }
func (a *Announcer) Close() error           { return nil }
