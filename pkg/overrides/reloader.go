package overrides

import (
	"context"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
)

// NewReloader returns the service that loads o's runtime file when it
// starts (failing the start if the file is bad) and reloads it every
// per_tenant_override_period, keeping the previous limits when a reload
// fails. Without a runtime file it is an idle service.
func NewReloader(o *Overrides, logger log.Logger, reg prometheus.Registerer) services.Service {
	if o.cfg.PerTenantOverrideConfig == "" {
		return services.NewIdleService(nil, nil)
	}
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rubato_overrides_reloads_total", Help: "Reloads of the per-tenant overrides file, by result."}, []string{"result"})
	lastSuccess := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rubato_overrides_last_reload_success_timestamp_seconds", Help: "Time of the last successful overrides reload."})
	if reg != nil {
		reg.MustRegister(reloads, lastSuccess)
	}
	reload := func() error {
		err := o.Reload()
		if err != nil {
			reloads.WithLabelValues("failure").Inc()
			return err
		}
		reloads.WithLabelValues("success").Inc()
		lastSuccess.SetToCurrentTime()
		return nil
	}
	return services.NewBasicService(func(context.Context) error {
		return reload()
	}, func(ctx context.Context) error {
		t := time.NewTicker(o.cfg.PerTenantOverridePeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				if err := reload(); err != nil {
					level.Error(logger).Log("msg", "reloading per-tenant overrides failed; keeping the previous ones", "file", o.cfg.PerTenantOverrideConfig, "err", err)
				}
			}
		}
	}, nil)
}
