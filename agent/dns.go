package agent

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/miekg/dns"

	"github.com/weftnet/weft/dnsproxy"
)

// DNSConfig configures the node-local DNS proxy (Kubernetes mode only; see
// docs/dns.md). Pods use it when their resolv.conf names ListenAddress.
type DNSConfig struct {
	// Enabled runs the proxy. Default true (in Kubernetes mode). When
	// false, the agent removes the interface and NOTRACK table an earlier
	// run left.
	Enabled *bool `yaml:"enabled"`
	// ListenAddress is the node-local IPv4 address the proxy answers on,
	// put on Interface. Default 169.254.20.10 (NodeLocal DNSCache's).
	ListenAddress string `yaml:"listenAddress"`
	// Port is the UDP and TCP port. Default 53.
	Port int `yaml:"port"`
	// Interface is the dummy interface holding ListenAddress.
	// Default weft-dns.
	Interface string `yaml:"interface"`
	// Zone is the cluster domain. Default cluster.local.
	Zone string `yaml:"zone"`
	// TTL of cluster records. Default 5s.
	TTL Duration `yaml:"ttl"`
	// NegativeTTL is how long NXDOMAIN and NODATA for cluster names may be
	// cached by clients (the SOA minimum). Default 5s.
	NegativeTTL Duration `yaml:"negativeTTL"`
	// Pods is how a-b-c-d.<ns>.pod.<zone> is answered: insecure (any
	// address, as the specification requires), verified (only a pod's
	// own address in its namespace) or disabled. Default insecure.
	Pods string `yaml:"pods"`
	// Upstreams are the resolvers other names are forwarded to, ip or
	// ip:port, tried in order. Default: the nameservers of ResolvConf.
	Upstreams []string `yaml:"upstreams"`
	// ResolvConf is read for upstreams when Upstreams is empty.
	// Default /etc/resolv.conf.
	ResolvConf string `yaml:"resolvConf"`
	// UpstreamTCP forwards over TCP rather than UDP (UDP falls back to TCP
	// for truncated answers anyway). Default false.
	UpstreamTCP bool `yaml:"upstreamTCP"`
	// UpstreamTimeout bounds one attempt at one upstream. Default 2s.
	UpstreamTimeout Duration `yaml:"upstreamTimeout"`
	// Cache holds forwarded answers.
	Cache DNSCacheConfig `yaml:"cache"`
	// Notrack keeps DNS to and from ListenAddress out of conntrack with
	// an nftables table (weft-dns). Default true.
	Notrack *bool `yaml:"notrack"`
	// AllowedNetworks are client networks answered besides the cluster
	// CIDR, the node's own addresses and loopback. Default none.
	AllowedNetworks []string `yaml:"allowedNetworks"`
}

// DNSCacheConfig configures the cache of forwarded answers.
type DNSCacheConfig struct {
	// Size is the most answers held. Default 10000.
	Size int `yaml:"size"`
	// MaxTTL caps a positive answer's time in the cache. Default 1h.
	MaxTTL Duration `yaml:"maxTTL"`
	// MaxNegativeTTL caps NXDOMAIN and NODATA. Default 5m.
	MaxNegativeTTL Duration `yaml:"maxNegativeTTL"`
	// ServeStale is how long past expiry an answer is still served when
	// every upstream fails (RFC 8767). Default 0: off.
	ServeStale Duration `yaml:"serveStale"`
}

// Defaults for DNSConfig.
const (
	DefaultDNSListenAddress = "169.254.20.10"
	DefaultDNSPort          = 53
	DefaultDNSInterface     = "weft-dns"
	DefaultDNSZone          = "cluster.local"
	DefaultDNSTTL           = 5 * time.Second
	DefaultDNSResolvConf    = "/etc/resolv.conf"
	DefaultDNSCacheSize     = 10000
)

func (c *DNSConfig) complete() error {
	t := true
	if c.Enabled == nil {
		c.Enabled = &t
	}
	if c.Notrack == nil {
		c.Notrack = &t
	}
	setDefault(&c.ListenAddress, DefaultDNSListenAddress)
	if c.Port == 0 {
		c.Port = DefaultDNSPort
	}
	setDefault(&c.Interface, DefaultDNSInterface)
	setDefault(&c.Zone, DefaultDNSZone)
	if c.TTL.Duration == 0 {
		c.TTL.Duration = DefaultDNSTTL
	}
	if c.NegativeTTL.Duration == 0 {
		c.NegativeTTL.Duration = DefaultDNSTTL
	}
	setDefault(&c.Pods, string(dnsproxy.PodsInsecure))
	setDefault(&c.ResolvConf, DefaultDNSResolvConf)
	if c.UpstreamTimeout.Duration == 0 {
		c.UpstreamTimeout.Duration = 2 * time.Second
	}
	if c.Cache.Size == 0 {
		c.Cache.Size = DefaultDNSCacheSize
	}
	if c.Cache.MaxTTL.Duration == 0 {
		c.Cache.MaxTTL.Duration = time.Hour
	}
	if c.Cache.MaxNegativeTTL.Duration == 0 {
		c.Cache.MaxNegativeTTL.Duration = 5 * time.Minute
	}
	return c.validate()
}

func (c *DNSConfig) validate() error {
	a, err := netip.ParseAddr(c.ListenAddress)
	if err != nil || !a.Is4() {
		return fmt.Errorf("dns.listenAddress: %q is not an IPv4 address", c.ListenAddress)
	}
	if err := validPort("dns.port", c.Port); err != nil {
		return err
	}
	if len(c.Interface) > 15 {
		return fmt.Errorf("dns.interface: %q is longer than 15 characters", c.Interface)
	}
	if _, ok := dns.IsDomainName(c.Zone); !ok || dns.Fqdn(c.Zone) == "." {
		return fmt.Errorf("dns.zone: %q is not a domain name", c.Zone)
	}
	if z := dns.CanonicalName(c.Zone); dns.IsSubDomain(z, dnsproxy.ClustersetZone) || dns.IsSubDomain(dnsproxy.ClustersetZone, z) {
		return fmt.Errorf("dns.zone: %q overlaps clusterset.local, the zone shared by peered clusters", c.Zone)
	}
	for _, f := range []struct {
		field string
		d     time.Duration
	}{{"dns.ttl", c.TTL.Duration}, {"dns.negativeTTL", c.NegativeTTL.Duration}} {
		if field, d := f.field, f.d; d < time.Second || d > 24*time.Hour || d%time.Second != 0 {
			return fmt.Errorf("%s: %s is not whole seconds between 1s and 24h", field, d)
		}
	}
	switch dnsproxy.PodRecords(c.Pods) {
	case dnsproxy.PodsInsecure, dnsproxy.PodsVerified, dnsproxy.PodsDisabled:
	default:
		return fmt.Errorf("dns.pods: %q is not one of insecure, verified, disabled", c.Pods)
	}
	for i, u := range c.Upstreams {
		ap, err := dnsproxy.ParseUpstream(u)
		if err != nil {
			return fmt.Errorf("dns.upstreams[%d]: %w", i, err)
		}
		if ap.Addr() == a && int(ap.Port()) == c.Port {
			return fmt.Errorf("dns.upstreams[%d]: %s is the proxy itself", i, u)
		}
	}
	if len(c.Upstreams) == 0 && !filepath.IsAbs(c.ResolvConf) {
		return fmt.Errorf("dns.resolvConf: %q is not an absolute path", c.ResolvConf)
	}
	if c.UpstreamTimeout.Duration < 10*time.Millisecond || c.UpstreamTimeout.Duration > 30*time.Second {
		return fmt.Errorf("dns.upstreamTimeout: %s is not between 10ms and 30s", c.UpstreamTimeout)
	}
	if c.Cache.Size < 0 {
		return fmt.Errorf("dns.cache.size: %d is negative", c.Cache.Size)
	}
	for _, f := range []struct {
		field string
		d     time.Duration
	}{{"dns.cache.maxTTL", c.Cache.MaxTTL.Duration}, {"dns.cache.maxNegativeTTL", c.Cache.MaxNegativeTTL.Duration}, {"dns.cache.serveStale", c.Cache.ServeStale.Duration}} {
		if f.d < 0 {
			return fmt.Errorf("%s: %s is negative", f.field, f.d)
		}
	}
	for i, n := range c.AllowedNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			return fmt.Errorf("dns.allowedNetworks[%d]: %q is not a CIDR", i, n)
		}
	}
	return nil
}

// DNSStatus is the addon's part of `weft status`.
type DNSStatus struct {
	// Listen is where the proxy answers (ip:port, UDP and TCP).
	Listen string `json:"listen"`
	Zone   string `json:"zone"`
	// Synced is true once the informers had their first list; until
	// then cluster names get SERVFAIL.
	Synced    bool     `json:"synced"`
	Upstreams []string `json:"upstreams"`
	// CacheEntries is how many forwarded answers are cached.
	CacheEntries int `json:"cacheEntries"`
	// Notrack is true when the NOTRACK table is in place.
	Notrack   bool   `json:"notrack"`
	LastError string `json:"lastError,omitempty"`
}
