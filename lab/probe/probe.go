// Package probe checks connectivity between network namespaces without any
// tool inside them: sockets are opened on an OS thread switched into the
// namespace (a socket belongs to the namespace it was created in, and keeps
// working from any thread afterwards).
//
// A Server echoes, over TCP and UDP, the source address it saw, so a prober
// learns both that it got through and whether anything rewrote its address
// on the way (the Kubernetes network model forbids NAT between pods).
package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"
)

// InNetns runs f on an OS thread that is inside the namespace at path
// ("" means the caller's namespace). The thread is restored afterwards.
func InNetns(path string, f func() error) error {
	if path == "" {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is only unlocked if it was restored; otherwise Go
		// throws it away with the goroutine.
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("failed to get current netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			errc <- fmt.Errorf("failed to open netns %s: %w", path, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- fmt.Errorf("failed to enter netns %s: %w", path, err)
			return
		}
		ferr := f()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// Server answers TCP and UDP probes on one address inside a namespace.
type Server struct {
	tcp  net.Listener
	udp  net.PacketConn
	wg   sync.WaitGroup
	once sync.Once
}

// Serve starts a probe server listening on addr (TCP and UDP) inside the
// namespace at nsPath.
func Serve(nsPath string, addr netip.AddrPort) (*Server, error) {
	s := &Server{}
	err := InNetns(nsPath, func() error {
		var err error
		if s.tcp, err = net.Listen("tcp", addr.String()); err != nil {
			return err
		}
		if s.udp, err = net.ListenPacket("udp", addr.String()); err != nil {
			s.tcp.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to start probe server on %s in %s: %w", addr, nsPath, err)
	}
	s.wg.Add(2)
	go s.serveTCP()
	go s.serveUDP()
	return s, nil
}

func (s *Server) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "seen %s at %s\n", c.RemoteAddr(), c.LocalAddr())
			// Read what the client sent (an HTTP client sends a request)
			// until it closes: closing with unread data would reset the
			// connection before the client read the answer.
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			_, _ = io.Copy(io.Discard, c)
		}()
	}
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		_, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = s.udp.WriteTo([]byte("seen "+from.String()+" at "+s.udp.LocalAddr().String()+"\n"), from)
	}
}

// Close stops the server.
func (s *Server) Close() {
	s.once.Do(func() {
		s.tcp.Close()
		s.udp.Close()
		s.wg.Wait()
	})
}

// TCP connects from the namespace at nsPath to target and returns the
// source address the server saw.
func TCP(ctx context.Context, nsPath string, target netip.AddrPort) (netip.AddrPort, error) {
	a, err := TCPAnswer(ctx, nsPath, target)
	return a.Seen, err
}

// Answer is what a probe server says: the source address it saw, and the
// address it was reached at (behind a Service address, which endpoint).
type Answer struct {
	Seen, Server netip.AddrPort
}

// TCPAnswer is TCP with the whole answer.
func TCPAnswer(ctx context.Context, nsPath string, target netip.AddrPort) (Answer, error) {
	var conn net.Conn
	err := InNetns(nsPath, func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, "tcp", target.String())
		return err
	})
	if err != nil {
		return Answer{}, fmt.Errorf("tcp to %s: %w", target, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return Answer{}, fmt.Errorf("tcp to %s: reading answer: %w", target, err)
	}
	return ParseAnswer(line)
}

// UDP sends a datagram from the namespace at nsPath to target, retrying
// every 200ms until an answer arrives or ctx ends, and returns the source
// address the server saw.
func UDP(ctx context.Context, nsPath string, target netip.AddrPort) (netip.AddrPort, error) {
	a, err := UDPAnswer(ctx, nsPath, target)
	return a.Seen, err
}

// UDPAnswer is UDP with the whole answer.
func UDPAnswer(ctx context.Context, nsPath string, target netip.AddrPort) (Answer, error) {
	var conn net.Conn
	err := InNetns(nsPath, func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, "udp", target.String())
		return err
	})
	if err != nil {
		return Answer{}, fmt.Errorf("udp to %s: %w", target, err)
	}
	defer conn.Close()
	buf := make([]byte, 256)
	for {
		if _, err := conn.Write([]byte("probe")); err != nil && ctx.Err() != nil {
			return Answer{}, fmt.Errorf("udp to %s: %w", target, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := conn.Read(buf)
		if err == nil {
			return ParseAnswer(string(buf[:n]))
		}
		if ctx.Err() != nil {
			return Answer{}, fmt.Errorf("udp to %s: no answer: %w", target, ctx.Err())
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			// ICMP unreachable arrives as ECONNREFUSED; keep trying until ctx ends.
			select {
			case <-ctx.Done():
				return Answer{}, fmt.Errorf("udp to %s: %w", target, err)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// ParseAnswer reads a probe server's answer line ("seen A at B").
func ParseAnswer(line string) (Answer, error) {
	s, ok := strings.CutPrefix(strings.TrimSpace(line), "seen ")
	if !ok {
		return Answer{}, fmt.Errorf("unexpected probe answer %q", line)
	}
	seen, server, _ := strings.Cut(s, " at ")
	var a Answer
	var err error
	if a.Seen, err = parseAddrPort(seen); err != nil {
		return Answer{}, fmt.Errorf("unexpected probe answer %q: %w", line, err)
	}
	if server != "" {
		if a.Server, err = parseAddrPort(server); err != nil {
			return Answer{}, fmt.Errorf("unexpected probe answer %q: %w", line, err)
		}
	}
	return a, nil
}

func parseAddrPort(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}
