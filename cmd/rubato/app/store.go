package app

import (
	"fmt"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/local"
)

// newStore builds the configured object store, instrumented.
func newStore(cfg TraceStorageConfig, logger log.Logger, reg prometheus.Registerer) (backend.Backend, error) {
	switch cfg.Backend {
	case "local":
		be, err := local.New(local.Config{Path: cfg.Local.Path}, logger)
		if err != nil {
			return nil, fmt.Errorf("local backend: %w", err)
		}
		return backend.Instrument(be, "local", reg), nil
	}
	return nil, fmt.Errorf("storage.trace.backend %q is not available", cfg.Backend)
}
