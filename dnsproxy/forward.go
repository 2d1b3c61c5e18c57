package dnsproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/miekg/dns"
)

// ForwardConfig configures the forwarder.
type ForwardConfig struct {
	// Upstreams are ip:port of the resolvers asked, in order: the next is
	// tried when one fails (no answer, SERVFAIL or REFUSED).
	Upstreams []netip.AddrPort
	// TCP sends every query over TCP; otherwise UDP, and TCP again when
	// an answer comes back truncated.
	TCP bool
	// Timeout bounds one attempt at one upstream. Default 2s.
	Timeout time.Duration
	// Log gets upstream failures at debug level.
	Log *slog.Logger
}

// upstreamUDPSize is the EDNS buffer size asked of upstreams (the DNS
// flag day 2020 value: no IP fragmentation).
const upstreamUDPSize = 1232

// Forward sends queries to upstream resolvers. It is the end of the chain.
type Forward struct {
	cfg      ForwardConfig
	udp, tcp *dns.Client
	metrics  *Metrics
}

// NewForward makes a forwarder. With no upstreams, every query gets
// SERVFAIL saying so.
func NewForward(cfg ForwardConfig, m *Metrics) *Forward {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Forward{
		cfg:     cfg,
		udp:     &dns.Client{Net: "udp", Timeout: cfg.Timeout, UDPSize: upstreamUDPSize},
		tcp:     &dns.Client{Net: "tcp", Timeout: cfg.Timeout},
		metrics: m,
	}
}

// ServeDNS forwards r. When no upstream answers usefully, the client gets
// SERVFAIL with an extended error (RFC 8914) saying why.
func (f *Forward) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) {
	q := r.Copy()
	q.Id = dns.Id()
	q.Compress = true
	if o := q.IsEdns0(); o != nil {
		o.SetUDPSize(upstreamUDPSize)
		o.Option = nil // the client's options (cookies, padding) are its own
	} else {
		q.SetEdns0(upstreamUDPSize, false)
	}
	var last *dns.Msg
	lastErr := errors.New("no upstreams configured")
	for _, up := range f.cfg.Upstreams {
		resp, err := f.exchange(ctx, q, up)
		if err != nil {
			f.metrics.upstreamError(up.String())
			f.cfg.Log.Debug("upstream failed", "upstream", up, "name", r.Question[0].Name, "err", err)
			lastErr = err
			continue
		}
		if resp.Rcode == dns.RcodeServerFailure || resp.Rcode == dns.RcodeRefused {
			f.metrics.upstreamError(up.String())
			last = resp
			continue
		}
		f.respond(w, r, resp)
		return
	}
	if last != nil {
		f.respond(w, r, last)
		return
	}
	m := new(dns.Msg)
	m.SetRcode(r, dns.RcodeServerFailure)
	m.RecursionAvailable = true
	if r.IsEdns0() != nil {
		m.SetEdns0(upstreamUDPSize, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_EDE{
			InfoCode:  dns.ExtendedErrorCodeNoReachableAuthority,
			ExtraText: fmt.Sprintf("no upstream answered: %v", lastErr),
		})
	}
	_ = w.WriteMsg(m)
}

func (f *Forward) respond(w dns.ResponseWriter, r, resp *dns.Msg) {
	resp.Id = r.Id
	resp.Question = r.Question
	_ = w.WriteMsg(resp)
}

// exchange asks one upstream, over TCP too when the UDP answer is
// truncated.
func (f *Forward) exchange(ctx context.Context, q *dns.Msg, up netip.AddrPort) (*dns.Msg, error) {
	addr := net.JoinHostPort(up.Addr().String(), strconv.Itoa(int(up.Port())))
	client, proto := f.udp, "udp"
	if f.cfg.TCP {
		client, proto = f.tcp, "tcp"
	}
	resp, rtt, err := client.ExchangeContext(ctx, q, addr)
	if err == nil && resp.Truncated && proto == "udp" {
		f.metrics.upstreamRTT(up.String(), proto, rtt)
		client, proto = f.tcp, "tcp"
		resp, rtt, err = client.ExchangeContext(ctx, q, addr)
	}
	if err != nil {
		return nil, err
	}
	if resp.Id != q.Id || len(resp.Question) != 1 || !sameQuestion(resp.Question[0], q.Question[0]) {
		return nil, errors.New("answer does not match the question")
	}
	f.metrics.upstreamRTT(up.String(), proto, rtt)
	return resp, nil
}

func sameQuestion(a, b dns.Question) bool {
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && dns.CanonicalName(a.Name) == dns.CanonicalName(b.Name)
}
