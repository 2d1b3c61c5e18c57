package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/weftnet/weft/agent"
)

// printDNSStatus is the DNS proxy's line in `weft status`.
func printDNSStatus(w io.Writer, d *agent.DNSStatus) {
	if d == nil {
		return
	}
	state := "serving"
	if !d.Synced {
		state = "forwarding only (cluster zone not synced)"
	}
	notrack := "notrack"
	if !d.Notrack {
		notrack = "conntrack"
	}
	fmt.Fprintf(w, "  dns: %s on %s (%s), zone %s, upstreams %s, %d cached\n",
		state, d.Listen, notrack, d.Zone, orDash(strings.Join(d.Upstreams, " ")), d.CacheEntries)
	if d.LastError != "" {
		fmt.Fprintf(w, "  dns error: %s\n", d.LastError)
	}
}
