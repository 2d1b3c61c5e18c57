// Command coredns is the reference DNS server `make bench` measures weft's
// node-local proxy against: CoreDNS built from its Go module with only the
// plugins the comparison uses (kubernetes, cache, forward, template for the
// benchmark's upstream, bind, errors), in upstream's directive order.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/template"
)

func init() {
	dnsserver.Directives = []string{"bind", "errors", "cache", "template", "kubernetes", "forward"}
}

func main() { coremain.Run() }
