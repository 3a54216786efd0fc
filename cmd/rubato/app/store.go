package app

import (
	"context"
	"fmt"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/local"
	"github.com/rubatodb/rubato/pkg/backend/s3"
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
	case "s3":
		be, err := s3.New(cfg.S3, logger, reg)
		if err != nil {
			return nil, fmt.Errorf("s3 backend: %w", err)
		}
		// One clear error at start-up for a missing bucket or bad
		// credentials, rather than a stream of failed flushes later.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := be.Check(ctx); err != nil {
			return nil, err
		}
		return backend.Instrument(be, "s3", reg), nil
	}
	return nil, fmt.Errorf("storage.trace.backend %q is not available", cfg.Backend)
}
