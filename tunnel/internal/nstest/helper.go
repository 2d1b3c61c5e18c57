// Package nstest runs tunnel backends in network namespaces for root tests.
//
// wireguard-go opens sockets from its own goroutines on arbitrary OS
// threads, so two backends in two namespaces must never share a process.
// Each node therefore runs in a child process — the test binary re-executed
// under "ip netns exec NS" with EnvHelper set — and the test drives it over
// JSON lines on stdin/stdout. The child also serves traffic probes (ICMP
// echo, TCP echo) from inside its namespace.
package nstest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/weftnet/weft/tunnel"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// EnvHelper, when set in the environment, makes MaybeRunHelper take over
// the process.
const EnvHelper = "WEFT_TUNNEL_TEST_HELPER"

// Config is the JSON-safe part of tunnel.Config.
type Config struct {
	Interface string
	Port      int
	KeyFile   string
	VNI       int
}

type request struct {
	Op     string // setup, apply, stats, close, listen, dial, ping
	Config Config
	Local  tunnel.Local
	Peers  []tunnel.Peer
	Remove bool
	Addr   string // listen/dial address, ping destination
	Src    string // dial/ping source address
	Size   int    // dial payload bytes
}

type response struct {
	Err   string
	Info  tunnel.Info
	Stats []tunnel.PeerStats
}

// MaybeRunHelper turns the process into a node helper when EnvHelper is
// set, and exits when the test closes it; otherwise it returns at once.
// Call it first thing in TestMain.
func MaybeRunHelper(newBackend func(tunnel.Config) (tunnel.Backend, error)) {
	if os.Getenv(EnvHelper) == "" {
		return
	}
	os.Exit(runHelper(os.Stdin, os.Stdout, newBackend))
}

func runHelper(in io.Reader, out io.Writer, newBackend func(tunnel.Config) (tunnel.Backend, error)) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	dec := json.NewDecoder(bufio.NewReader(in))
	enc := json.NewEncoder(out)
	var b tunnel.Backend
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if b != nil {
				b.Close(false)
			}
			if errors.Is(err, io.EOF) {
				return 0
			}
			fmt.Fprintln(os.Stderr, "helper: bad request:", err)
			return 2
		}
		var resp response
		err := func() error {
			if b == nil && req.Op != "setup" && req.Op != "listen" && req.Op != "dial" && req.Op != "ping" {
				return errors.New("no backend: setup first")
			}
			switch req.Op {
			case "setup":
				var err error
				if b == nil {
					b, err = newBackend(tunnel.Config{
						Interface: req.Config.Interface, Port: req.Config.Port,
						KeyFile: req.Config.KeyFile, VNI: req.Config.VNI, Logger: log,
					})
					if err != nil {
						return err
					}
				}
				resp.Info, err = b.Setup(ctxBG(), req.Local)
				return err
			case "apply":
				return b.Apply(ctxBG(), req.Peers)
			case "stats":
				var err error
				resp.Stats, err = b.Stats(ctxBG())
				return err
			case "close":
				err := b.Close(req.Remove)
				resp.Err = errString(err)
				enc.Encode(resp)
				os.Exit(0)
			case "listen":
				return listenEcho(req.Addr)
			case "dial":
				return dialEcho(req.Src, req.Addr, req.Size)
			case "ping":
				return ping(req.Src, req.Addr)
			}
			return fmt.Errorf("unknown op %q", req.Op)
		}()
		resp.Err = errString(err)
		if err := enc.Encode(resp); err != nil {
			return 2
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// listenEcho serves a TCP echo server on addr until the process exits.
func listenEcho(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return nil
}

// dialEcho connects from src to addr, sends size bytes and checks they
// come back.
func dialEcho(src, addr string, size int) error {
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	errc := make(chan error, 1)
	go func() { _, err := c.Write(msg); errc <- err }()
	got := make([]byte, size)
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if !bytes.Equal(got, msg) {
		return errors.New("echo differs from what was sent")
	}
	return nil
}

// ping sends one ICMP echo from src to dst and waits a second for the reply.
func ping(src, dst string) error {
	c, err := icmp.ListenPacket("ip4:icmp", src)
	if err != nil {
		return err
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("weft")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return err
	}
	dstAddr := &net.IPAddr{IP: net.ParseIP(dst)}
	if _, err := c.WriteTo(b, dstAddr); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply || from.String() != dstAddr.String() {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id {
			return nil
		}
	}
}

func ctxBG() context.Context { return context.Background() }
