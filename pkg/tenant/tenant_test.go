package tenant

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"
)

func TestValidate(t *testing.T) {
	for _, ok := range []string{"a", "single-tenant", "Team_1.prod", "x(y)'*!", strings.Repeat("a", 150), "..a"} {
		require.NoError(t, Validate(ok), ok)
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", `a\b`, "a b", "a\x00", "tab\t", "é", strings.Repeat("a", 151), "a|b"} {
		require.ErrorIs(t, Validate(bad), ErrInvalid, "%q", bad)
	}
}

func TestResolver(t *testing.T) {
	req := func(vals ...string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		for _, v := range vals {
			r.Header.Add(HeaderName, v)
		}
		return r
	}
	off := Resolver{}
	id, err := off.FromHTTP(req("../evil"))
	require.NoError(t, err)
	require.Equal(t, SingleTenant, id, "multitenancy off ignores the header")

	on := Resolver{MultitenancyEnabled: true}
	id, err = on.FromHTTP(req("acme"))
	require.NoError(t, err)
	require.Equal(t, "acme", id)
	_, err = on.FromHTTP(req())
	require.ErrorIs(t, err, ErrMissing)
	_, err = on.FromHTTP(req("../x"))
	require.ErrorIs(t, err, ErrInvalid)
	_, err = on.FromHTTP(req("a", "b"))
	require.ErrorIs(t, err, ErrInvalid)

	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-scope-orgid", "acme"))
	id, err = on.FromGRPC(ctx)
	require.NoError(t, err)
	require.Equal(t, "acme", id)
	_, err = on.FromGRPC(context.Background())
	require.ErrorIs(t, err, ErrMissing)

	_, err = FromContext(context.Background())
	require.ErrorIs(t, err, ErrMissing)
	id, err = FromContext(WithTenant(context.Background(), "t"))
	require.NoError(t, err)
	require.Equal(t, "t", id)
}

func FuzzValidate(f *testing.F) {
	f.Add("acme")
	f.Add("../x")
	f.Fuzz(func(t *testing.T, id string) {
		if Validate(id) != nil {
			return
		}
		require.NotContains(t, id, "/")
		require.NotEqual(t, "..", id)
		require.LessOrEqual(t, len(id), MaxLength)
	})
}
