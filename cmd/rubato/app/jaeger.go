package app

import (
	"errors"
	"flag"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/rubatodb/rubato/distributor/receiver"
	"github.com/rubatodb/rubato/pkg/tenant"
)

// jaegerReceivers maps `receivers.jaeger.protocols` onto the Jaeger
// receiver. TEMPORARY: filled in when distributor/receiver/jaeger lands.
type jaegerReceivers struct{}

func (j *jaegerReceivers) registerFlagsAndApplyDefaults(string, *flag.FlagSet) {}
func (j *jaegerReceivers) enableAll()                                         {}
func (j *jaegerReceivers) disableAll()                                        {}
func (j *jaegerReceivers) validate() error                                    { return nil }
func (j *jaegerReceivers) enable(string, yaml.Node) error {
	return errors.New("jaeger receiver not available in this build")
}
func (j *jaegerReceivers) build(receiver.Consumer, tenant.Resolver, log.Logger, prometheus.Registerer) ([]services.Service, error) {
	return nil, nil
}
