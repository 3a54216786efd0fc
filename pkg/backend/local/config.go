package local

import (
	"errors"
	"flag"
)

// Config configures the local backend. YAML key as Tempo:
// storage.trace.local.path.
type Config struct {
	Path string `yaml:"path"`
}

// RegisterFlagsAndApplyDefaults registers the flags under prefix (for example
// "storage.trace") and sets the defaults.
func (cfg *Config) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	if prefix != "" {
		prefix += "."
	}
	f.StringVar(&cfg.Path, prefix+"local.path", "./data/blocks", "Directory holding the blocks of the local backend.")
}

// Validate checks the configuration.
func (cfg *Config) Validate() error {
	if cfg.Path == "" {
		return errors.New("local backend: path must not be empty")
	}
	return nil
}
