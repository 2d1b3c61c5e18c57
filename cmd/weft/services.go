package main

import (
	"fmt"
	"io"

	"github.com/weftnet/weft/serviceproxy"
)

// printServicesStatus is the Service proxy's part of `weft status`.
func printServicesStatus(w io.Writer, s *serviceproxy.Status) {
	if s == nil {
		return
	}
	switch {
	case s.Proxy != serviceproxy.ProxyWeft:
		fmt.Fprintf(w, "  services: served by %s; weft stands aside\n", s.Proxy)
	case !s.Synced:
		fmt.Fprintf(w, "  services: waiting for the first list of Services and EndpointSlices\n")
	default:
		fmt.Fprintf(w, "  services: %d served, %d endpoints, %d chains (last update %s)\n", s.Services, s.Endpoints, s.Chains, orDash(s.LastOutcome))
	}
	if s.LastError != "" {
		fmt.Fprintf(w, "  services error: %s\n", s.LastError)
	}
	for _, p := range s.Problems {
		fmt.Fprintf(w, "  services: %s\n", p)
	}
}
