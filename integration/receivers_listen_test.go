package integration

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	jcthrift "github.com/uber/jaeger-client-go/thrift"
	jcagent "github.com/uber/jaeger-client-go/thrift-gen/agent"
	jct "github.com/uber/jaeger-client-go/thrift-gen/jaeger"
)

// procSockets returns the local addresses of the sockets process pid holds,
// from /proc: TCP sockets in LISTEN state and bound UDP sockets.
func procSockets(t testing.TB, pid int) (tcp, udp []string) {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	require.NoError(t, err)
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	read := func(file, state string) []string {
		b, err := os.ReadFile(file)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		require.NoError(t, err)
		var out []string
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != state || !inodes[f[9]] {
				continue
			}
			out = append(out, procAddr(t, f[1]))
		}
		return out
	}
	tcp = append(read("/proc/net/tcp", "0A"), read("/proc/net/tcp6", "0A")...)
	udp = append(read("/proc/net/udp", "07"), read("/proc/net/udp6", "07")...)
	slices.Sort(tcp)
	slices.Sort(udp)
	return tcp, udp
}

// procAddr decodes /proc/net's "0100007F:1F90" (IPv4 only; anything else is
// returned raw, and will not match what the test expects).
func procAddr(t testing.TB, s string) string {
	host, port, ok := strings.Cut(s, ":")
	require.True(t, ok, s)
	p, err := strconv.ParseUint(port, 16, 16)
	require.NoError(t, err)
	if len(host) != 8 {
		return fmt.Sprintf("[%s]:%d", host, p)
	}
	v, err := strconv.ParseUint(host, 16, 32)
	require.NoError(t, err)
	return fmt.Sprintf("%d.%d.%d.%d:%d", byte(v), byte(v>>8), byte(v>>16), byte(v>>24), p)
}

// agentPacket is an agent emitBatch datagram holding one span of trace low.
func agentPacket(t testing.TB, compact bool, low int64) []byte {
	t.Helper()
	var pf jcthrift.TProtocolFactory = jcthrift.NewTBinaryProtocolFactoryDefault()
	if compact {
		pf = jcthrift.NewTCompactProtocolFactory()
	}
	buf := jcthrift.NewTMemoryBuffer()
	require.NoError(t, jcagent.NewAgentClientFactory(buf, pf).EmitBatch(t.Context(), &jct.Batch{
		Process: &jct.Process{ServiceName: "probe"},
		Spans:   []*jct.Span{{TraceIdLow: low, SpanId: 1, OperationName: "probe", StartTime: time.Now().UnixMicro(), Duration: 1}},
	}))
	return buf.Bytes()
}

// udpRefused reports whether datagrams to addr draw ICMP port unreachable
// (ECONNREFUSED on the connected socket): nobody is bound there.
func udpRefused(t testing.TB, addr string, packet []byte) bool {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	require.NoError(t, err)
	defer conn.Close()
	buf := make([]byte, 16)
	for range 5 {
		if _, err := conn.Write(packet); errors.Is(err, syscall.ECONNREFUSED) {
			return true
		}
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(time.Second)))
		if _, err := conn.Read(buf); errors.Is(err, syscall.ECONNREFUSED) {
			return true
		}
	}
	return false
}

// TestReceiversBlockTurnsListenersOnAndOff starts the binary twice with a
// distributor.receivers block naming complementary subsets of the
// protocols, and checks that exactly the named ones listen, on their
// configured addresses: the process's sockets, TCP dials, UDP datagrams
// (accepted-spans metric and read back, or ICMP refusal).
func TestReceiversBlockTurnsListenersOnAndOff(t *testing.T) {
	type receiver struct {
		name      string
		udp       bool
		transport string // label of rubato_receiver_accepted_spans_total (UDP)
		port      func(ports) int
	}
	all := []receiver{
		{name: "otlp grpc", port: func(p ports) int { return p.OTLPGRPC }},
		{name: "otlp http", port: func(p ports) int { return p.OTLPHTTP }},
		{name: "zipkin", port: func(p ports) int { return p.Zipkin }},
		{name: "jaeger grpc", port: func(p ports) int { return p.JaegerGRPC }},
		{name: "jaeger thrift_http", port: func(p ports) int { return p.JaegerThriftHTTP }},
		{name: "jaeger thrift_compact", udp: true, transport: "udp_thrift_compact", port: func(p ports) int { return p.JaegerCompact }},
		{name: "jaeger thrift_binary", udp: true, transport: "udp_thrift_binary", port: func(p ports) int { return p.JaegerBinary }},
	}
	for _, tc := range []struct {
		name      string
		receivers string
		on        []string
	}{{
		name: "otlp http, jaeger thrift_http and thrift_compact",
		receivers: `    otlp:
      protocols:
        http:
          endpoint: 127.0.0.1:{{.OTLPHTTP}}
    jaeger:
      protocols:
        thrift_http:
          endpoint: 127.0.0.1:{{.JaegerThriftHTTP}}
        thrift_compact:
          endpoint: 127.0.0.1:{{.JaegerCompact}}`,
		on: []string{"otlp http", "jaeger thrift_http", "jaeger thrift_compact"},
	}, {
		name: "otlp grpc, zipkin, jaeger grpc and thrift_binary",
		receivers: `    otlp:
      protocols:
        grpc:
          endpoint: 127.0.0.1:{{.OTLPGRPC}}
    zipkin:
      endpoint: 127.0.0.1:{{.Zipkin}}
    jaeger:
      protocols:
        grpc:
          endpoint: 127.0.0.1:{{.JaegerGRPC}}
        thrift_binary:
          endpoint: 127.0.0.1:{{.JaegerBinary}}`,
		on: []string{"otlp grpc", "zipkin", "jaeger grpc", "jaeger thrift_binary"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, options{Receivers: tc.receivers})
			addr := func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
			wantTCP := []string{addr(s.ports.HTTP), addr(s.ports.GRPC)}
			var wantUDP []string
			for _, r := range all {
				if !slices.Contains(tc.on, r.name) {
					continue
				}
				if r.udp {
					wantUDP = append(wantUDP, addr(r.port(s.ports)))
				} else {
					wantTCP = append(wantTCP, addr(r.port(s.ports)))
				}
			}
			slices.Sort(wantTCP)
			slices.Sort(wantUDP)
			gotTCP, gotUDP := procSockets(t, s.cmd.Process.Pid)
			require.Equal(t, wantTCP, gotTCP, "TCP listeners of the process")
			require.Equal(t, wantUDP, gotUDP, "UDP sockets of the process")

			for _, r := range all {
				on := slices.Contains(tc.on, r.name)
				a := addr(r.port(s.ports))
				if !r.udp {
					conn, err := net.DialTimeout("tcp", a, 10*time.Second)
					if on {
						require.NoError(t, err, "%s should listen on %s", r.name, a)
						conn.Close()
					} else {
						require.ErrorIs(t, err, syscall.ECONNREFUSED, "%s should not listen on %s", r.name, a)
					}
					continue
				}
				low := int64(randUint64() >> 1)
				packet := agentPacket(t, r.transport == "udp_thrift_compact", low)
				metric := func() float64 {
					return s.metric(t, "rubato_receiver_accepted_spans_total", `transport="`+r.transport+`"`)
				}
				if !on {
					require.True(t, udpRefused(t, a, packet), "%s should not be bound on %s", r.name, a)
					require.Zero(t, metric())
					continue
				}
				conn, err := net.Dial("udp", a)
				require.NoError(t, err)
				_, err = conn.Write(packet)
				conn.Close()
				require.NoError(t, err)
				deadline := time.Now().Add(60 * time.Second)
				for metric() < 1 && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
				require.Equal(t, 1.0, metric(), "%s: accepted spans", r.name)
				require.Equal(t, 1, countSpans(s.waitTrace(t, be128(0, uint64(low)), 1)))
			}
		})
	}
}
