package distributor

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTokenForIsStable(t *testing.T) {
	id := make([]byte, 16)
	id[15] = 1
	require.Equal(t, tokenFor("t", id), tokenFor("t", id))
	require.NotEqual(t, tokenFor("t", id), tokenFor("u", id), "tenant is part of the token")
}
