// Package adapterstest holds test helpers for the adapters' outputs, for
// the adapters' own tests and the integration tests alike.
package adapterstest

import (
	"net"
	"strings"
	"sync"
	"testing"
)

// DogStatsD collects every datagram sent to a local UDP port, one line per
// datagram (a datagram may itself hold several metric lines).
type DogStatsD struct {
	conn *net.UDPConn
	mu   sync.Mutex
	buf  strings.Builder
}

// ListenDogStatsD listens on a free UDP port of 127.0.0.1 until the test
// ends.
func ListenDogStatsD(t testing.TB) *DogStatsD {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen udp: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	d := &DogStatsD{conn: conn}
	go func() {
		b := make([]byte, 65536)
		for {
			n, _, err := conn.ReadFromUDP(b)
			if err != nil {
				return
			}
			d.mu.Lock()
			d.buf.Write(b[:n])
			d.buf.WriteByte('\n')
			d.mu.Unlock()
		}
	}()
	return d
}

// Addr is the address to send to, as adapters.datadog.address takes it.
func (d *DogStatsD) Addr() string { return d.conn.LocalAddr().String() }

// Text is everything received so far.
func (d *DogStatsD) Text() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.buf.String()
}

// Lines is everything received so far, a metric line each.
func (d *DogStatsD) Lines() []string { return strings.Split(d.Text(), "\n") }
