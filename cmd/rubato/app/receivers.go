package app

import (
	"flag"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/rubatodb/rubato/distributor/receiver/jaeger"
	"github.com/rubatodb/rubato/distributor/receiver/otlp"
	"github.com/rubatodb/rubato/distributor/receiver/zipkin"
)

// ReceiversConfig is `distributor.receivers`, in Tempo's (the OpenTelemetry
// Collector's) layout. Without the block, OTLP gRPC and HTTP listen on their
// default ports. With it, exactly the receivers and protocols it names
// listen; a protocol named with no settings (`grpc:`) uses its defaults.
type ReceiversConfig struct {
	OTLP   otlp.Config
	Zipkin *zipkin.Config

	// registered holds the structs whose fields the flags point at, so a
	// protocol turned on by YAML still honours its flags.
	registered struct {
		grpc   *otlp.GRPCConfig
		http   *otlp.HTTPConfig
		zipkin zipkin.Config
	}
	jaeger jaegerReceivers

	flagsZipkin, flagsJaeger *bool
}

// RegisterFlagsAndApplyDefaults registers every receiver's flags; only OTLP
// is on by default.
func (c *ReceiversConfig) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	c.OTLP.RegisterFlagsAndApplyDefaults(prefix+"otlp.", f)
	c.registered.grpc, c.registered.http = c.OTLP.GRPC, c.OTLP.HTTP
	c.registered.zipkin.RegisterFlagsAndApplyDefaults(prefix+"zipkin.", f)
	c.jaeger.registerFlagsAndApplyDefaults(prefix+"jaeger.", f)
	var zipkinOn, jaegerOn bool
	f.BoolVar(&zipkinOn, prefix+"zipkin.enabled", false, "Enable the Zipkin receiver.")
	f.BoolVar(&jaegerOn, prefix+"jaeger.enabled", false, "Enable every Jaeger receiver protocol.")
	c.flagsZipkin, c.flagsJaeger = &zipkinOn, &jaegerOn
}

// applyFlags turns on receivers enabled by flag.
func (c *ReceiversConfig) applyFlags() {
	if c.flagsZipkin != nil && *c.flagsZipkin {
		c.Zipkin = &c.registered.zipkin
	}
	if c.flagsJaeger != nil && *c.flagsJaeger {
		c.jaeger.enableAll()
	}
}

// Validate checks the enabled receivers.
func (c *ReceiversConfig) Validate() error {
	if err := c.OTLP.Validate(); err != nil {
		return err
	}
	if c.Zipkin != nil {
		if err := c.Zipkin.Validate(); err != nil {
			return err
		}
	}
	return c.jaeger.validate()
}

// UnmarshalYAML implements the Collector's presence semantics.
func (c *ReceiversConfig) UnmarshalYAML(n *yaml.Node) error {
	var raw map[string]yaml.Node
	if err := n.Decode(&raw); err != nil {
		return err
	}
	c.OTLP.GRPC, c.OTLP.HTTP, c.Zipkin = nil, nil, nil
	c.jaeger.disableAll()
	for name, node := range raw {
		switch name {
		case "otlp":
			protos, err := protocols(node)
			if err != nil {
				return fmt.Errorf("receivers.otlp: %w", err)
			}
			for p, pn := range protos {
				switch p {
				case "grpc":
					c.OTLP.GRPC = c.registered.grpc
					if err := decodeIfSet(pn, c.OTLP.GRPC); err != nil {
						return fmt.Errorf("receivers.otlp.protocols.grpc: %w", err)
					}
				case "http":
					c.OTLP.HTTP = c.registered.http
					if err := decodeIfSet(pn, c.OTLP.HTTP); err != nil {
						return fmt.Errorf("receivers.otlp.protocols.http: %w", err)
					}
				default:
					return fmt.Errorf("receivers.otlp: unknown protocol %q", p)
				}
			}
		case "zipkin":
			c.Zipkin = &c.registered.zipkin
			if err := decodeIfSet(node, c.Zipkin); err != nil {
				return fmt.Errorf("receivers.zipkin: %w", err)
			}
		case "jaeger":
			protos, err := protocols(node)
			if err != nil {
				return fmt.Errorf("receivers.jaeger: %w", err)
			}
			for p, pn := range protos {
				if err := c.jaeger.enable(p, pn); err != nil {
					return fmt.Errorf("receivers.jaeger.protocols.%s: %w", p, err)
				}
			}
		default:
			return fmt.Errorf("receivers: %q is not supported (otlp, jaeger, zipkin are)", name)
		}
	}
	return nil
}

// YAMLSchema is the layout UnmarshalYAML decodes, for naming unknown keys.
func (*ReceiversConfig) YAMLSchema() any {
	return struct {
		OTLP *struct {
			Protocols struct {
				GRPC *otlp.GRPCConfig `yaml:"grpc"`
				HTTP *otlp.HTTPConfig `yaml:"http"`
			} `yaml:"protocols"`
		} `yaml:"otlp"`
		Zipkin *zipkin.Config `yaml:"zipkin"`
		Jaeger *struct {
			Protocols jaeger.Config `yaml:"protocols"`
		} `yaml:"jaeger"`
	}{}
}

func protocols(n yaml.Node) (map[string]yaml.Node, error) {
	var p struct {
		Protocols map[string]yaml.Node `yaml:"protocols"`
	}
	if err := decodeIfSet(n, &p); err != nil {
		return nil, err
	}
	return p.Protocols, nil
}

// decodeIfSet decodes n into v unless n is empty or null (`grpc:`).
func decodeIfSet(n yaml.Node, v any) error {
	if n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return nil
	}
	return n.Decode(v)
}
