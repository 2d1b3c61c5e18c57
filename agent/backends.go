package agent

import (
	"fmt"
	"sort"
	"strings"

	"github.com/weftnet/weft/tunnel"
	"github.com/weftnet/weft/tunnel/vxlan"
	"github.com/weftnet/weft/tunnel/wireguard"
)

// backends maps a tunnel.backend value to its constructor. It is an explicit
// map, not an init() registry, so the set of backends is visible here.
var backends = map[string]func(tunnel.Config) (tunnel.Backend, error){
	"wireguard": wireguard.New,
	"vxlan":     vxlan.New,
}

func newBackend(name string, cfg tunnel.Config) (tunnel.Backend, error) {
	ctor, ok := backends[name]
	if !ok {
		names := make([]string, 0, len(backends))
		for n := range backends {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("tunnel.backend: %q is not one of %s", name, strings.Join(names, ", "))
	}
	return ctor(cfg)
}
