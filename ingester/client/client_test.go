package client

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTokenForIsStable(t *testing.T) {
	id := make([]byte, 16)
	id[15] = 1
	require.Equal(t, TokenFor("t", id), TokenFor("t", id))
	require.NotEqual(t, TokenFor("t", id), TokenFor("u", id), "tenant is part of the token")
}
