package app

import (
	"flag"
	"fmt"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/rubatodb/rubato/distributor/receiver"
	"github.com/rubatodb/rubato/distributor/receiver/jaeger"
	"github.com/rubatodb/rubato/pkg/tenant"
)

// jaegerReceivers maps `receivers.jaeger.protocols` onto the Jaeger
// receiver: grpc, thrift_http, thrift_compact, thrift_binary. All are off
// unless named (or -distributor.receivers.jaeger.enabled is set).
type jaegerReceivers struct {
	cfg        jaeger.Config
	registered jaeger.Config // the structs the flags point at
}

func (j *jaegerReceivers) registerFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	j.registered.RegisterFlagsAndApplyDefaults(prefix, f)
	j.disableAll()
}

func (j *jaegerReceivers) enableAll() { j.cfg = j.registered }

func (j *jaegerReceivers) disableAll() { j.cfg = jaeger.Config{} }

func (j *jaegerReceivers) enable(protocol string, n yaml.Node) error {
	switch protocol {
	case "grpc":
		j.cfg.GRPC = j.registered.GRPC
		return decodeIfSet(n, j.cfg.GRPC)
	case "thrift_http":
		j.cfg.ThriftHTTP = j.registered.ThriftHTTP
		return decodeIfSet(n, j.cfg.ThriftHTTP)
	case "thrift_compact":
		j.cfg.ThriftCompact = j.registered.ThriftCompact
		return decodeIfSet(n, j.cfg.ThriftCompact)
	case "thrift_binary":
		j.cfg.ThriftBinary = j.registered.ThriftBinary
		return decodeIfSet(n, j.cfg.ThriftBinary)
	}
	return fmt.Errorf("unknown protocol (grpc, thrift_http, thrift_compact, thrift_binary are)")
}

func (j *jaegerReceivers) enabled() bool {
	c := j.cfg
	return c.GRPC != nil || c.ThriftHTTP != nil || c.ThriftCompact != nil || c.ThriftBinary != nil
}

func (j *jaegerReceivers) validate() error {
	if !j.enabled() {
		return nil
	}
	return j.cfg.Validate()
}

func (j *jaegerReceivers) build(c receiver.Consumer, t tenant.Resolver, logger log.Logger, reg prometheus.Registerer) ([]services.Service, error) {
	if !j.enabled() {
		return nil, nil
	}
	r, err := jaeger.New(j.cfg, c, t, logger, reg)
	if err != nil {
		return nil, err
	}
	return []services.Service{r}, nil
}
