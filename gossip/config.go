package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures a Node. The zero value of each optional field means the
// default written next to it.
type Config struct {
	NodeName  string // required; unique in the cluster
	ClusterID string // default "default"; members with another ClusterID are ignored

	BindAddr      netip.Addr // default 0.0.0.0
	BindPort      int        // default 7946
	AdvertiseAddr netip.Addr // default: BindAddr if it is not unspecified, else chosen by memberlist
	Seeds         []string   // host:port of other members; may include self; empty = first node

	Key                  []byte // memberlist encryption key (16, 24 or 32 bytes); required unless InsecureNoEncryption
	InsecureNoEncryption bool   // tests only: gossip in clear text

	ClusterCIDR netip.Prefix  // default 10.244.0.0/16
	BlockBits   int           // prefix length of a node's block, default 24
	LeaseFile   string        // persisted lease (JSON: cidr + claimedAt); "" = don't persist
	LeaseGrace  time.Duration // a failed node's lease is held this long before reuse; default 5m
	StaticLease netip.Prefix  // if valid, use it (Kubernetes podCIDR) instead of claiming

	// RejoinInterval is how often seeds that are not live members are
	// joined again, which is what heals a partition that outlasted
	// memberlist's own gossip to the dead. Default: the push/pull
	// interval (60 s with DefaultTuning).
	RejoinInterval time.Duration

	// Meta holds the initial endpoint fields (UnderlayIP, TunnelPort,
	// PublicKey, VTEPMAC). Name, ClusterID, PodCIDR, ClaimedAt and Static
	// are owned by the package. UnderlayIP defaults to AdvertiseAddr.
	Meta Meta

	Transport memberlist.Transport     // nil = real UDP/TCP
	Tune      func(*memberlist.Config) // optional, applied last, after DefaultTuning (tests, scale experiments)
	Logger    *slog.Logger             // default: discard
}

const (
	defaultClusterID  = "default"
	defaultBindPort   = 7946
	defaultBlockBits  = 24
	defaultLeaseGrace = 5 * time.Minute
)

var defaultClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")

// withDefaults returns a validated copy of c with defaults filled in.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.NodeName == "" {
		bad("NodeName is required")
	} else if len(c.NodeName) > 255 {
		bad("NodeName is %d bytes, limit 255", len(c.NodeName))
	}
	if c.ClusterID == "" {
		c.ClusterID = defaultClusterID
	}
	if !c.BindAddr.IsValid() {
		c.BindAddr = netip.IPv4Unspecified()
	}
	if c.BindPort == 0 {
		c.BindPort = defaultBindPort
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		bad("BindPort %d is out of range 1-65535", c.BindPort)
	}
	if !c.AdvertiseAddr.IsValid() && !c.BindAddr.IsUnspecified() {
		c.AdvertiseAddr = c.BindAddr
	}
	if c.AdvertiseAddr.IsValid() && c.AdvertiseAddr.IsUnspecified() {
		bad("AdvertiseAddr %s is unspecified", c.AdvertiseAddr)
	}
	for i, s := range c.Seeds {
		if s == "" {
			bad("Seeds[%d] is empty", i)
		}
	}
	switch {
	case c.InsecureNoEncryption && len(c.Key) > 0:
		bad("Key is set but InsecureNoEncryption is true; choose one")
	case !c.InsecureNoEncryption && len(c.Key) == 0:
		bad("Key is required (or set InsecureNoEncryption for tests)")
	case len(c.Key) > 0:
		if err := validateKey(c.Key); err != nil {
			bad("Key: %v", err)
		}
	}
	if !c.ClusterCIDR.IsValid() {
		c.ClusterCIDR = defaultClusterCIDR
	}
	if c.ClusterCIDR != c.ClusterCIDR.Masked() {
		bad("ClusterCIDR %s is not a network address (want %s)", c.ClusterCIDR, c.ClusterCIDR.Masked())
	}
	if c.BlockBits == 0 {
		c.BlockBits = defaultBlockBits
	}
	if c.BlockBits < c.ClusterCIDR.Bits() || c.BlockBits > c.ClusterCIDR.Addr().BitLen() {
		bad("BlockBits %d must be between the ClusterCIDR prefix length %d and %d",
			c.BlockBits, c.ClusterCIDR.Bits(), c.ClusterCIDR.Addr().BitLen())
	} else if c.BlockBits-c.ClusterCIDR.Bits() > maxBlockSplit {
		bad("BlockBits %d cuts ClusterCIDR %s into more than 2^%d blocks", c.BlockBits, c.ClusterCIDR, maxBlockSplit)
	}
	if c.LeaseGrace == 0 {
		c.LeaseGrace = defaultLeaseGrace
	}
	if c.LeaseGrace < 0 {
		bad("LeaseGrace %s is negative", c.LeaseGrace)
	}
	if c.RejoinInterval < 0 {
		bad("RejoinInterval %s is negative", c.RejoinInterval)
	}
	if c.StaticLease.IsValid() && c.StaticLease != c.StaticLease.Masked() {
		bad("StaticLease %s is not a network address (want %s)", c.StaticLease, c.StaticLease.Masked())
	}
	if !c.Meta.UnderlayIP.IsValid() {
		c.Meta.UnderlayIP = c.AdvertiseAddr
	}
	c.Meta = c.Meta.clone()
	c.Meta.Name, c.Meta.ClusterID = c.NodeName, c.ClusterID
	c.Meta.PodCIDR, c.Meta.ClaimedAt, c.Meta.Static = netip.Prefix{}, time.Time{}, false
	if _, err := encodeMeta(c.Meta); err != nil {
		bad("Meta: %v", err)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("invalid gossip config: %w", err)
	}
	return c, nil
}
