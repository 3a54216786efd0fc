package wal

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// SyncPolicy says when appended records are fsynced. See doc.go for what an
// acknowledged record survives under each policy.
type SyncPolicy string

const (
	// SyncAlways fsyncs before Append returns. Concurrent appenders share
	// fsyncs (group commit). The default.
	SyncAlways SyncPolicy = "always"
	// SyncInterval hands records to the kernel (write(2)) before Append
	// returns and fsyncs every Config.SyncInterval.
	SyncInterval SyncPolicy = "interval"
	// SyncNever hands records to the kernel before Append returns and
	// leaves flushing to the OS (fsync only on Rotate and Close).
	SyncNever SyncPolicy = "never"
)

// Defaults.
const (
	DefaultDir          = "./data/wal"
	DefaultSegmentSize  = 128 << 20
	DefaultSyncPolicy   = SyncAlways
	DefaultSyncInterval = time.Second
	// MinSegmentSize keeps a misconfiguration from creating a file per
	// record. A single record larger than the segment size is still
	// written, alone in its segment.
	MinSegmentSize = 1 << 10
)

// String implements flag.Value.
func (p SyncPolicy) String() string { return string(p) }

// Set implements flag.Value.
func (p *SyncPolicy) Set(s string) error {
	v := SyncPolicy(s)
	if err := v.validate(); err != nil {
		return err
	}
	*p = v
	return nil
}

func (p SyncPolicy) validate() error {
	switch p {
	case SyncAlways, SyncInterval, SyncNever:
		return nil
	}
	return fmt.Errorf("wal: unknown sync policy %q (want %q, %q or %q)", string(p), SyncAlways, SyncInterval, SyncNever)
}

// Config configures a WAL.
type Config struct {
	// Dir holds the segment files and nothing else the WAL writes.
	Dir string `yaml:"path"`
	// SegmentSize: a new segment is started when a record would take the
	// active one past this many bytes.
	SegmentSize int64 `yaml:"segment_size"`
	// SyncPolicy: always, interval or never.
	SyncPolicy SyncPolicy `yaml:"sync_policy"`
	// SyncInterval is the fsync period under the interval policy; a power
	// loss can take the records acknowledged in the last interval plus the
	// duration of the fsync in flight (see doc.go).
	SyncInterval time.Duration `yaml:"sync_interval"`
}

// RegisterFlagsAndApplyDefaults registers the WAL flags, named
// prefix+"wal.path" and so on, and sets every field to its default.
func (c *Config) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	f.StringVar(&c.Dir, prefix+"wal.path", DefaultDir, "Directory of the write-ahead log.")
	f.Int64Var(&c.SegmentSize, prefix+"wal.segment-size", DefaultSegmentSize, "Size in bytes at which the write-ahead log starts a new segment file.")
	c.SyncPolicy = DefaultSyncPolicy
	f.Var(&c.SyncPolicy, prefix+"wal.sync-policy", "When the write-ahead log fsyncs: always (before a push is acknowledged; survives power loss), interval (every sync-interval; survives a process crash), never (left to the OS).")
	f.DurationVar(&c.SyncInterval, prefix+"wal.sync-interval", DefaultSyncInterval, "How often the write-ahead log fsyncs under sync-policy=interval.")
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	if c.Dir == "" {
		return errors.New("wal: path must not be empty")
	}
	if c.SegmentSize < MinSegmentSize {
		return fmt.Errorf("wal: segment_size %d is below the minimum %d", c.SegmentSize, MinSegmentSize)
	}
	if err := c.SyncPolicy.validate(); err != nil {
		return err
	}
	if c.SyncPolicy == SyncInterval && c.SyncInterval <= 0 {
		return fmt.Errorf("wal: sync_interval must be positive with sync_policy %q, got %s", SyncInterval, c.SyncInterval)
	}
	return nil
}
