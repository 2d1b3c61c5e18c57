package dnsproxy

import (
	"context"

	"github.com/miekg/dns"
)

// Handler answers a query or passes it to the next handler in its chain.
// A handler writes exactly one reply to w.
type Handler interface {
	ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg)

// ServeDNS calls f.
func (f HandlerFunc) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) { f(ctx, w, r) }

// recorder is a ResponseWriter that keeps the reply instead of sending it,
// so a handler can look at what the rest of the chain answered (the cache
// stores it, the cluster zone appends it to a CNAME).
type recorder struct {
	dns.ResponseWriter // the client's writer, for addresses; never written
	msg                *dns.Msg
}

func (r *recorder) WriteMsg(m *dns.Msg) error {
	r.msg = m
	return nil
}

func (r *recorder) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	r.msg = m
	return len(b), nil
}

// record runs h on r and returns its reply (nil if it wrote none).
func record(ctx context.Context, h Handler, w dns.ResponseWriter, r *dns.Msg) *dns.Msg {
	rec := &recorder{ResponseWriter: w}
	h.ServeDNS(ctx, rec, r)
	return rec.msg
}

// reply writes a reply to r with rcode and no records.
func reply(w dns.ResponseWriter, r *dns.Msg, rcode int) {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	m.RecursionAvailable = true
	_ = w.WriteMsg(m)
}
