package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestPortsBelowEphemeralAndDistinct: ports are free, distinct, and below
// the ephemeral range, for both protocols.
func TestPortsBelowEphemeralAndDistinct(t *testing.T) {
	seen := map[int]bool{}
	for i := range 50 {
		p := TCP(t)
		if i%2 == 1 {
			p = UDP(t)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if p >= ephemeralLow() || p < lowest {
			t.Fatalf("port %d outside [%d, %d)", p, lowest, ephemeralLow())
		}
	}
	p := TCP(t)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatalf("port %d not free: %v", p, err)
	}
	_ = l.Close()
}
