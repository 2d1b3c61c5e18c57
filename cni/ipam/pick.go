package ipam

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrExhausted is returned when every assignable address of the block is
// taken.
var ErrExhausted = errors.New("no free addresses")

// Assignable reports whether ip may be given to a pod of block: inside the
// block, and neither the network address, the gateway, nor the last
// (broadcast) address.
func Assignable(block netip.Prefix, gateway, ip netip.Addr) bool {
	block = block.Masked()
	if !block.Contains(ip) || ip == gateway {
		return false
	}
	return ip != block.Addr() && ip != lastAddr(block)
}

// CheckBlock returns an error when block has no assignable address at all.
func CheckBlock(block netip.Prefix, gateway netip.Addr) error {
	if !block.IsValid() {
		return fmt.Errorf("invalid block %v", block)
	}
	if !block.Contains(gateway) {
		return fmt.Errorf("gateway %v is outside block %v", gateway, block)
	}
	// network, gateway and broadcast take three addresses: a /30 is the
	// smallest IPv4 block with room for a pod.
	if block.Addr().BitLen()-block.Bits() < 2 {
		return fmt.Errorf("block %v is too small to allocate from", block)
	}
	return nil
}

// pick returns the first assignable, unused address after last, wrapping
// around the block, so a just-freed address is not handed out again until
// the rest of the block has been used. An invalid last (or one outside the
// block) starts the scan at the beginning. pick is pure.
func pick(block netip.Prefix, gateway, last netip.Addr, used func(netip.Addr) bool) (netip.Addr, error) {
	if err := CheckBlock(block, gateway); err != nil {
		return netip.Addr{}, err
	}
	block = block.Masked()
	first := block.Addr()
	end := lastAddr(block)
	start := first
	if last.IsValid() && block.Contains(last) && last != end {
		start = last.Next()
	}
	ip := start
	for {
		if Assignable(block, gateway, ip) && !used(ip) {
			return ip, nil
		}
		if ip == end {
			ip = first
		} else {
			ip = ip.Next()
		}
		if ip == start {
			return netip.Addr{}, fmt.Errorf("%w in %v", ErrExhausted, block)
		}
	}
}

// countFree returns how many assignable addresses of block are unused.
func countFree(block netip.Prefix, gateway netip.Addr, used func(netip.Addr) bool) int {
	if CheckBlock(block, gateway) != nil {
		return 0
	}
	block = block.Masked()
	n := 0
	for ip := block.Addr(); block.Contains(ip); ip = ip.Next() {
		if Assignable(block, gateway, ip) && !used(ip) {
			n++
		}
		if ip == lastAddr(block) {
			break
		}
	}
	return n
}

// lastAddr is the highest address of a masked prefix.
func lastAddr(block netip.Prefix) netip.Addr {
	b := block.Addr().AsSlice()
	host := block.Addr().BitLen() - block.Bits()
	for i := len(b) - 1; i >= 0 && host > 0; i-- {
		if host >= 8 {
			b[i] = 0xff
			host -= 8
			continue
		}
		b[i] |= byte(1<<host - 1)
		host = 0
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
