// Package freeport hands out ports on 127.0.0.1 for the servers the
// integration tests start (rubato, MinIO).
//
// Invariants: a port is free when handed out, is never handed out twice by
// one process, and lies below the kernel's ephemeral port range. The last
// point matters: a port picked by listening on :0 comes from that range,
// and between picking it and the server binding it, any outgoing connection
// on the machine (another test package's client, say) may be given it as
// its local port, and the server fails with "address already in use".
package freeport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const lowest = 10000

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// TCP returns a TCP port free on 127.0.0.1.
func TCP(t testing.TB) int { t.Helper(); return pick(t, "tcp") }

// UDP returns a UDP port free on 127.0.0.1.
func UDP(t testing.TB) int { t.Helper(); return pick(t, "udp") }

func pick(t testing.TB, network string) int {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	top := ephemeralLow() - 1
	if top-lowest < 1000 {
		return anyPort(t, network) // no room below the ephemeral range
	}
	for range 1000 {
		p := lowest + rand.IntN(top-lowest+1)
		if given[p] || !free(network, p) {
			continue
		}
		given[p] = true
		return p
	}
	t.Fatalf("freeport: no free %s port in [%d, %d]", network, lowest, top)
	return 0
}

// free reports whether network can bind 127.0.0.1:p now.
func free(network string, p int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	if network == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux;
// 32768 where it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}

// anyPort is the fallback: a port the kernel picks.
func anyPort(t testing.TB, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("freeport: %v", err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("freeport: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
