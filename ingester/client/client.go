// Package client is the gRPC client of the ingester API, used by
// distributors and queriers.
//
// Invariants: one connection per ingester address, shared by all callers
// and safe for concurrent use; every call carries the tenant in the
// x-scope-orgid metadata; connections are closed only by Close.
package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// MaxMessageSize bounds messages between components (default 64 MiB).
const MaxMessageSize = 64 << 20

// Pool holds one connection per ingester address.
type Pool struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	opts  []grpc.DialOption
}

// NewPool returns an empty pool; extra dial options are appended to the
// defaults (plaintext, 64 MiB messages).
func NewPool(opts ...grpc.DialOption) *Pool {
	return &Pool{
		conns: map[string]*grpc.ClientConn{},
		opts: append([]grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)),
		}, opts...),
	}
}

// Get returns a client for the ingester at addr.
func (p *Pool) Get(addr string) (rubatopb.IngesterClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return nil, errors.New("ingester client pool closed")
	}
	cc, ok := p.conns[addr]
	if !ok {
		var err error
		cc, err = grpc.NewClient(addr, p.opts...)
		if err != nil {
			return nil, fmt.Errorf("dial ingester %s: %w", addr, err)
		}
		p.conns[addr] = cc
	}
	return rubatopb.NewIngesterClient(cc), nil
}

// Close closes every connection.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, cc := range p.conns {
		errs = append(errs, cc.Close())
	}
	p.conns = nil
	return errors.Join(errs...)
}

// WithTenant returns ctx with the tenant set in the outgoing metadata.
func WithTenant(ctx context.Context, tenantID string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "x-scope-orgid", tenantID)
}

// Ring identity of the ingesters, shared by the ingesters' lifecyclers and
// every component that reads their ring.
const (
	RingName = "ingester"
	RingKey  = "ring"
)
