package receiver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// ShutdownTimeout bounds a graceful stop of one server; after it in-flight
// requests are cut.
const ShutdownTimeout = 10 * time.Second

// Servers runs the listeners of one receiver package (HTTP, gRPC, UDP). Use
// it from a dskit BasicService: Listen* in starting, Start at the end of
// starting, Wait in running, Stop in stopping. Every goroutine it starts
// exits by Stop, which waits for them.
type Servers struct {
	entries []*server
	errc    chan error
	wg      sync.WaitGroup
}

type server struct {
	name  string
	addr  net.Addr
	serve func() error
	stop  func(ctx context.Context)
}

// ListenHTTP listens on addr for an HTTP server with handler h.
func (s *Servers) ListenHTTP(name, addr string, h http.Handler) error {
	return s.ListenHTTPTLS(name, addr, h, nil)
}

// ListenHTTPTLS listens on addr for an HTTP server with handler h, over TLS
// (HTTP/1.1 and HTTP/2) when tlsCfg is non-nil, else in plaintext.
func (s *Servers) ListenHTTPTLS(name, addr string, h http.Handler, tlsCfg *tls.Config) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s on %s: %w", name, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, TLSConfig: tlsCfg}
	s.entries = append(s.entries, &server{
		name: name, addr: lis.Addr(),
		serve: func() error {
			var err error
			if tlsCfg != nil {
				err = srv.ServeTLS(lis, "", "") // certificates come from TLSConfig
			} else {
				err = srv.Serve(lis)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
		stop: func(ctx context.Context) {
			if srv.Shutdown(ctx) != nil {
				_ = srv.Close()
			}
			_ = lis.Close() // in case Serve never ran

		},
	})
	return nil
}

// ListenGRPC listens on addr for gRPC server g.
func (s *Servers) ListenGRPC(name, addr string, g *grpc.Server) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s on %s: %w", name, addr, err)
	}
	s.entries = append(s.entries, &server{
		name: name, addr: lis.Addr(),
		serve: func() error { return g.Serve(lis) },
		stop: func(ctx context.Context) {
			done := make(chan struct{})
			go func() { g.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				g.Stop()
				<-done
			}
			_ = lis.Close() // in case Serve never ran
		},
	})
	return nil
}

// ListenUDP listens on addr; serve reads packets until the connection is
// closed by Stop (it must then return).
func (s *Servers) ListenUDP(name, addr string, serve func(pc net.PacketConn) error) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("listen %s on %s: %w", name, addr, err)
	}
	var closed sync.Once
	closeConn := func() { closed.Do(func() { _ = pc.Close() }) }
	s.entries = append(s.entries, &server{
		name: name, addr: pc.LocalAddr(),
		serve: func() error {
			err := serve(pc)
			closeConn()
			return err
		},
		stop: func(context.Context) { closeConn() },
	})
	return nil
}

// Addr returns the address server name listens on, nil if there is none.
func (s *Servers) Addr(name string) net.Addr {
	for _, e := range s.entries {
		if e.name == name {
			return e.addr
		}
	}
	return nil
}

// Start serves every listener in its own goroutine.
func (s *Servers) Start() {
	s.errc = make(chan error, len(s.entries))
	for _, e := range s.entries {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := e.serve(); err != nil {
				s.errc <- fmt.Errorf("serve %s: %w", e.name, err)
			}
		}()
	}
}

// Wait blocks until ctx is done (nil) or a server fails (its error).
func (s *Servers) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.errc:
		return err
	}
}

// Stop shuts every server down gracefully (bounded by ShutdownTimeout) and
// waits for the serving goroutines. Safe on listeners never started.
func (s *Servers) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, e := range s.entries {
		wg.Add(1)
		go func() { defer wg.Done(); e.stop(ctx) }()
	}
	wg.Wait()
	s.wg.Wait()
}
