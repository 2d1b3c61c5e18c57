package memory

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
)

// netDevCounter reads one interface's cumulative bytes received plus sent
// from a /proc/net/dev file (/proc/self/net/dev: the process's own network
// namespace), re-reading it into the same buffer each time.
type netDevCounter struct {
	path  string
	iface string
	buf   []byte
}

func newNetDevCounter(path, iface string) *netDevCounter {
	return &netDevCounter{path: path, iface: iface, buf: make([]byte, 0, 4096)}
}

// read returns the interface's bytes received plus sent.
func (c *netDevCounter) read() (uint64, error) {
	f, err := os.Open(c.path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	c.buf = c.buf[:0]
	for {
		if len(c.buf) == cap(c.buf) {
			c.buf = slices.Grow(c.buf, 4096)
		}
		n, err := f.Read(c.buf[len(c.buf):cap(c.buf)])
		c.buf = c.buf[:len(c.buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	return netDevBytes(c.buf, c.iface)
}

// netDevBytes finds iface's line in /proc/net/dev's text ("  weft0: rx_bytes
// rx_packets ... (8 receive fields) tx_bytes ...") and returns rx_bytes +
// tx_bytes.
func netDevBytes(text []byte, iface string) (uint64, error) {
	for line := range bytes.SplitSeq(text, []byte("\n")) {
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok || string(bytes.TrimSpace(name)) != iface {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) < 16 {
			return 0, fmt.Errorf("%s in net/dev: %d counters, want 16", iface, len(f))
		}
		rx, err1 := strconv.ParseUint(string(f[0]), 10, 64)
		tx, err2 := strconv.ParseUint(string(f[8]), 10, 64)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("%s in net/dev: bad byte counters %q, %q", iface, f[0], f[8])
		}
		return rx + tx, nil
	}
	return 0, fmt.Errorf("no interface %s in net/dev", iface)
}
