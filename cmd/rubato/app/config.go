package app

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/memberlist"
	"go.yaml.in/yaml/v3"

	"github.com/rubatodb/rubato/compactor"
	"github.com/rubatodb/rubato/distributor"
	"github.com/rubatodb/rubato/ingester"
	"github.com/rubatodb/rubato/ingester/client"
	"github.com/rubatodb/rubato/pkg/backend/s3"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/querier"
)

// Config is the root configuration. YAML keys are Tempo's wherever Rubato
// has the same setting.
type Config struct {
	Target              string `yaml:"target"`
	MultitenancyEnabled bool   `yaml:"multitenancy_enabled"`
	// AuthEnabled is Tempo's older name for MultitenancyEnabled.
	AuthEnabled bool `yaml:"auth_enabled"`

	Server      ServerConfig      `yaml:"server"`
	Distributor DistributorConfig `yaml:"distributor"`
	Ingester    ingester.Config   `yaml:"ingester"`
	// IngesterClient is how distributors and queriers reach ingesters.
	IngesterClient client.Config `yaml:"ingester_client"`
	// MemberlistKV is the gossip cluster (dskit's keys: join_members,
	// bind_addr, bind_port, advertise_addr, advertise_port…), joined when a
	// ring's kvstore.store is memberlist.
	MemberlistKV memberlist.KVConfig `yaml:"memberlist"`
	Querier      querier.Config      `yaml:"querier"`
	// QueryFrontend holds the search defaults and bounds (Tempo's
	// query_frontend.search keys); Rubato's querier applies them itself.
	QueryFrontend querier.FrontendConfig `yaml:"query_frontend"`
	Compactor     compactor.Config       `yaml:"compactor"`
	Storage       StorageConfig          `yaml:"storage"`
	Overrides     overrides.Config       `yaml:"overrides"`

	// strict is -config.strict: unknown keys are fatal, also in the
	// per-tenant overrides file at every reload.
	strict bool
}

// DistributorConfig is the `distributor` block.
type DistributorConfig struct {
	Receivers ReceiversConfig `yaml:"receivers"`
	// Config holds the distributor's own keys (retry_after_on_resource_exhausted).
	distributor.Config `yaml:",inline"`
}

// StorageConfig is the `storage` block.
type StorageConfig struct {
	Trace TraceStorageConfig `yaml:"trace"`
}

// TraceStorageConfig is `storage.trace`.
type TraceStorageConfig struct {
	Backend       string             `yaml:"backend"`
	Local         LocalStorageConfig `yaml:"local"`
	WAL           ingester.WALConfig `yaml:"wal"`
	Block         block.Config       `yaml:"block"`
	BlocklistPoll time.Duration      `yaml:"blocklist_poll"`
	Cache         TraceCacheConfig   `yaml:"cache_sizes"`
	S3            s3.Config          `yaml:"s3"`
}

// LocalStorageConfig is `storage.trace.local`.
type LocalStorageConfig struct {
	Path string `yaml:"path"`
}

// TraceCacheConfig sizes the querier's in-memory caches.
type TraceCacheConfig struct {
	BlockBytes int64 `yaml:"block_bytes"`
}

// Targets returns the components to run: -target may name several,
// separated by commas (e.g. "distributor,ingester,querier").
func (c *Config) Targets() []string {
	var out []string
	for _, t := range strings.Split(c.Target, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// RegisterFlagsAndApplyDefaults registers every flag with its default.
func (c *Config) RegisterFlagsAndApplyDefaults(f *flag.FlagSet) {
	f.StringVar(&c.Target, "target", "all", "Components to run: all, distributor, ingester, querier, query-frontend, compactor, or a comma-separated list of them.")
	f.BoolVar(&c.MultitenancyEnabled, "multitenancy.enabled", false, "Require X-Scope-OrgID; when off every request belongs to single-tenant.")
	c.Server.RegisterFlagsAndApplyDefaults(f)
	c.Distributor.Receivers.RegisterFlagsAndApplyDefaults("distributor.receivers.", f)
	c.Distributor.Config.RegisterFlagsAndApplyDefaults("distributor.", f)
	c.Ingester.RegisterFlagsAndApplyDefaults("", f)
	c.IngesterClient.RegisterFlagsAndApplyDefaults("ingester-client.", f)
	c.MemberlistKV.RegisterFlags(f)
	c.Querier.RegisterFlagsAndApplyDefaults("", f)
	c.QueryFrontend.RegisterFlagsAndApplyDefaults("", f)
	c.Compactor.RegisterFlagsAndApplyDefaults("compactor.", f)
	f.StringVar(&c.Storage.Trace.Backend, "storage.trace.backend", "local", "Object store: local or s3.")
	f.StringVar(&c.Storage.Trace.Local.Path, "storage.trace.local.path", "./data/blocks", "Directory of the local backend.")
	c.Storage.Trace.S3.RegisterFlagsAndApplyDefaults("storage.trace", f)
	c.Storage.Trace.WAL.RegisterFlagsAndApplyDefaults("storage.trace.", f)
	c.Storage.Trace.Block.RegisterFlagsAndApplyDefaults("storage.trace.block.", f)
	f.DurationVar(&c.Storage.Trace.BlocklistPoll, "storage.trace.blocklist-poll", 5*time.Minute, "How often queriers list the backend's blocks.")
	f.Int64Var(&c.Storage.Trace.Cache.BlockBytes, "storage.trace.cache.block-bytes", 256<<20, "Querier cache of bloom shards and Parquet footers, in bytes.")
	c.Overrides.RegisterFlagsAndApplyDefaults("", f)
}

// Validate checks the whole configuration.
func (c *Config) Validate() error {
	var errs []error
	for _, t := range c.Targets() {
		switch t {
		case TargetAll, TargetDistributor, TargetIngester, TargetQuerier, TargetCompactor, TargetQueryFrontend:
		default:
			errs = append(errs, fmt.Errorf("target %q: want all, distributor, ingester, querier, query-frontend or compactor, or a comma-separated list of them", t))
		}
	}
	switch c.Storage.Trace.Backend {
	case "local":
		if c.Storage.Trace.Local.Path == "" {
			errs = append(errs, errors.New("storage.trace.local.path is required"))
		}
	case "s3":
		errs = append(errs, c.Storage.Trace.S3.Validate())
	default:
		errs = append(errs, fmt.Errorf("storage.trace.backend %q: want local or s3", c.Storage.Trace.Backend))
	}
	if c.Storage.Trace.BlocklistPoll <= 0 {
		errs = append(errs, errors.New("storage.trace.blocklist_poll must be positive"))
	}
	// Read-after-write: a flushed block must be in every querier's blocklist
	// before the ingester drops its local copy.
	if c.Ingester.CompleteBlockTimeout <= c.Storage.Trace.BlocklistPoll {
		errs = append(errs, fmt.Errorf("ingester.complete_block_timeout (%s) must exceed storage.trace.blocklist_poll (%s), or flushed traces would vanish from queries until the next poll",
			c.Ingester.CompleteBlockTimeout, c.Storage.Trace.BlocklistPoll))
	}
	// No orphans without losses: the compactor's janitor deletes a block
	// directory without meta.json once its objects are older than the
	// grace, so the grace must outlast any one upload attempt (ingester
	// and compactor may run in different processes with different files,
	// but one config is the common case and the one checked here).
	if g := c.Compactor.Compaction.PartialBlockGrace; g > 0 && g <= c.Ingester.FlushOpTimeout {
		errs = append(errs, fmt.Errorf("compactor.compaction.partial_block_grace (%s) must exceed ingester.flush_op_timeout (%s), or the janitor could delete an upload in progress",
			g, c.Ingester.FlushOpTimeout))
	}
	for _, v := range []interface{ Validate() error }{
		&c.Server, &c.Distributor.Receivers, &c.Distributor.Config, &c.Ingester, &c.IngesterClient, &c.MemberlistKV, &c.Querier, &c.QueryFrontend, &c.Compactor, &c.Storage.Trace.WAL, &c.Storage.Trace.Block, &c.Overrides,
	} {
		errs = append(errs, v.Validate())
	}
	return errors.Join(errs...)
}

// Load builds the configuration from defaults, then the YAML file named by
// -config.file, then the command-line flags, so a flag always wins.
// Unknown YAML keys, at any depth and in the per-tenant overrides file, are
// logged as warnings with their full path; -config.strict makes them fatal.
func Load(args []string, logger log.Logger) (*Config, error) {
	var (
		cfg       Config
		file      string
		expandEnv bool
		strict    bool
		version   bool
	)
	// A first pass finds -config.file without failing on other flags.
	pre := flag.NewFlagSet("rubato", flag.ContinueOnError)
	pre.SetOutput(discard{})
	pre.StringVar(&file, "config.file", "", "")
	pre.BoolVar(&expandEnv, "config.expand-env", false, "")
	pre.BoolVar(&strict, "config.strict", false, "")
	pre.BoolVar(&version, "version", false, "")
	pre.Bool(verifyFlag, false, "")
	(&Config{}).RegisterFlagsAndApplyDefaults(pre)
	_ = pre.Parse(args)

	f := newFlagSet(&cfg)
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if expandEnv {
			data = ExpandEnv(data)
		}
		if err := decodeYAML(data, &cfg, file, strict, logger); err != nil {
			return nil, fmt.Errorf("config %s: %w", file, err)
		}
	}
	if err := f.Parse(args); err != nil {
		return nil, err
	}
	cfg.strict = strict
	cfg.Distributor.Receivers.applyFlags()
	if cfg.AuthEnabled {
		cfg.MultitenancyEnabled = true
	}
	return &cfg, nil
}

// newFlagSet registers every flag of cfg, applying the defaults, and makes
// each flag's printed default (-help) the value it actually set: some
// defaults are adjusted after registration (the ingester's ring), and
// -help must not show the value that was overwritten.
func newFlagSet(cfg *Config) *flag.FlagSet {
	f := flag.NewFlagSet("rubato", flag.ContinueOnError)
	f.SetOutput(os.Stdout) // -help is asked for: print where it can be paged
	f.String("config.file", "", "YAML configuration file (Tempo's keys).")
	f.Bool("config.expand-env", false, "Expand ${VAR} and ${VAR:-default} in the configuration file.")
	f.Bool("config.strict", false, "Refuse to start on any configuration key Rubato does not know (Tempo keys it accepts and ignores stay warnings).")
	f.Bool("version", false, "Print the version and exit.")
	f.Bool(verifyFlag, false, "Check the configuration (strictly, as -config.strict) and the per-tenant overrides file, print \"config OK\" or the errors, and exit; nothing is started.")
	cfg.RegisterFlagsAndApplyDefaults(f)
	f.VisitAll(func(fl *flag.Flag) { fl.DefValue = fl.Value.String() })
	return f
}

// decodeYAML decodes data into cfg (a wrong value is an error) and checks
// its keys (checkKeys).
func decodeYAML(data []byte, cfg *Config, source string, strict bool, logger log.Logger) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if doc.Kind == 0 {
		return nil // empty file
	}
	if err := doc.Decode(cfg); err != nil {
		return err
	}
	return checkKeys(&doc, cfg, source, strict, ignoredTempoKeys, logger)
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// ExpandEnv replaces ${VAR} and ${VAR:-default} as Tempo's -config.expand-env.
func ExpandEnv(data []byte) []byte {
	return envRef.ReplaceAllFunc(data, func(m []byte) []byte {
		sub := envRef.FindSubmatch(m)
		if v, ok := os.LookupEnv(string(sub[1])); ok {
			return []byte(v)
		}
		return sub[2]
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
