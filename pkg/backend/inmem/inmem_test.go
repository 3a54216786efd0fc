package inmem_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/backendtest"
	"github.com/rubatodb/rubato/pkg/backend/inmem"
)

func TestAcceptance(t *testing.T) {
	backendtest.AcceptanceTest(t, func(t testing.TB) backend.Backend {
		b := inmem.New()
		t.Cleanup(func() { require.NoError(t, b.Close()) })
		return b
	})
}
