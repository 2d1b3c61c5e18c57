package probe

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

func TestLoopbackTCPAndUDP(t *testing.T) {
	target := netip.MustParseAddrPort("127.0.0.1:0")
	s, err := Serve("", target)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tcpAddr := netip.MustParseAddrPort(s.tcp.Addr().String())
	udpAddr := netip.MustParseAddrPort(s.udp.LocalAddr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	seen, err := TCP(ctx, "", tcpAddr)
	if err != nil || seen.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("TCP: seen %v, err %v", seen, err)
	}
	seen, err = UDP(ctx, "", udpAddr)
	if err != nil || seen.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("UDP: seen %v, err %v", seen, err)
	}
}

func TestUDPNoAnswerTimesOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	if _, err := UDP(ctx, "", netip.MustParseAddrPort("127.0.0.1:9")); err == nil {
		t.Fatal("want an error from a port nobody answers on")
	}
}

func TestParseAnswer(t *testing.T) {
	for in, ok := range map[string]bool{"seen 10.0.0.1:5\n": true, "seen [::ffff:10.0.0.1]:5": true, "seen 10.0.0.1:5 at 10.0.0.2:80\n": true,
		"seen 10.0.0.1:5 at x": false, "hello": false, "seen x": false} {
		_, err := ParseAnswer(in)
		if (err == nil) != ok {
			t.Errorf("ParseAnswer(%q): err %v", in, err)
		}
	}
	a, _ := ParseAnswer("seen [::ffff:10.0.0.1]:5 at 10.0.0.2:80")
	if a.Seen != netip.MustParseAddrPort("10.0.0.1:5") || a.Server != netip.MustParseAddrPort("10.0.0.2:80") {
		t.Errorf("parsed %+v", a)
	}
}
