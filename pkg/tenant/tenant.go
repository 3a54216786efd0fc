// Package tenant resolves and validates tenant IDs.
//
// Invariant: every tenant ID that leaves this package (FromHTTP, FromGRPC,
// FromContext) has passed Validate, so it is safe to use as one element of an
// object key or a file path: 1 to 150 bytes of [A-Za-z0-9!-_.*'()], and
// never "." or "..".
package tenant

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/grpc/metadata"
)

// SingleTenant is the tenant every request belongs to when multitenancy is off.
const SingleTenant = "single-tenant"

// HeaderName is the HTTP header (and, lower-cased, the gRPC metadata key)
// carrying the tenant ID.
const HeaderName = "X-Scope-OrgID"

// MaxLength is the longest tenant ID accepted.
const MaxLength = 150

// Errors.
var (
	// ErrMissing means multitenancy is on and the request named no tenant.
	ErrMissing = errors.New("tenant: no org id")
	// ErrInvalid means a tenant ID breaks the rules in the package doc.
	ErrInvalid = errors.New("tenant: invalid org id")
)

// Validate checks id against the rules in the package doc.
func Validate(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalid)
	}
	if len(id) > MaxLength {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxLength)
	}
	if id == "." || id == ".." {
		return fmt.Errorf("%w: %q", ErrInvalid, id)
	}
	for i := 0; i < len(id); i++ {
		if !validByte(id[i]) {
			return fmt.Errorf("%w: byte %#x at %d not allowed", ErrInvalid, id[i], i)
		}
	}
	return nil
}

func validByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!-_.*'()", c) >= 0
}

// Resolver turns a request into a tenant ID.
type Resolver struct {
	// MultitenancyEnabled requires the header; otherwise every request is
	// SingleTenant and the header is ignored.
	MultitenancyEnabled bool
}

// FromHTTP returns the request's tenant.
func (r Resolver) FromHTTP(req *http.Request) (string, error) {
	return r.resolve(req.Header.Values(HeaderName))
}

// FromGRPC returns the tenant of an incoming gRPC call.
func (r Resolver) FromGRPC(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	return r.resolve(md.Get(strings.ToLower(HeaderName)))
}

func (r Resolver) resolve(values []string) (string, error) {
	if !r.MultitenancyEnabled {
		return SingleTenant, nil
	}
	if len(values) == 0 || values[0] == "" {
		return "", ErrMissing
	}
	if len(values) > 1 {
		return "", fmt.Errorf("%w: more than one %s", ErrInvalid, HeaderName)
	}
	id := values[0]
	if err := Validate(id); err != nil {
		return "", err
	}
	return id, nil
}

type ctxKey struct{}

// WithTenant returns ctx carrying a validated tenant ID.
func WithTenant(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the tenant stored by WithTenant.
func FromContext(ctx context.Context) (string, error) {
	id, ok := ctx.Value(ctxKey{}).(string)
	if !ok {
		return "", ErrMissing
	}
	return id, nil
}
