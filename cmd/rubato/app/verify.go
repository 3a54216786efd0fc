package app

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/go-kit/log"

	"github.com/rubatodb/rubato/pkg/overrides"
)

// verifyFlag is -config.verify: check the configuration and exit.
const verifyFlag = "config.verify"

// verifyRequested reports whether args ask for -config.verify (also
// --config.verify and -config.verify=<bool>).
func verifyRequested(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != verifyFlag {
			continue
		}
		if !hasVal {
			return true
		}
		b, err := strconv.ParseBool(val)
		return err != nil || b // a bad value: let verify's flag parsing report it
	}
	return false
}

// Verify is `rubato -config.verify`: it loads the configuration exactly as
// start-up does (-config.file, -config.expand-env, then flags), with
// -config.strict semantics, runs the start-up validation and checks the
// per-tenant overrides file, and exits. It opens no listener, creates no
// directory and touches no backend: only the files named are read. It
// prints "config OK" on stdout and returns 0, or prints the reasons on
// stderr and returns 1.
func Verify(args []string, stdout, stderr io.Writer) int {
	if err := verifyConfig(args, log.NewLogfmtLogger(log.NewSyncWriter(stderr))); err != nil {
		fmt.Fprintf(stderr, "config invalid: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "config OK")
	return 0
}

func verifyConfig(args []string, logger log.Logger) error {
	// Appended last, so it wins over an explicit -config.strict=false.
	cfg, err := Load(append(append([]string(nil), args...), "-config.strict"), logger)
	if err != nil {
		return err
	}
	if !cfg.strict {
		// Flag parsing stopped early: a positional argument precedes the
		// appended flag.
		return errors.New("unexpected positional argument; rubato takes flags only")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	return verifyOverridesFile(cfg)
}

// verifyOverridesFile checks the per-tenant overrides file as its first
// load at start-up does: readable, only known keys, values that parse.
func verifyOverridesFile(cfg *Config) error {
	path := cfg.Overrides.PerTenantOverrideConfig
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("per-tenant overrides: %w", err)
	}
	if err := runtimeKeyCheck(path, true, log.NewNopLogger())(data); err != nil {
		return err
	}
	if _, err := overrides.ParseRuntimeConfig(data, cfg.Overrides.Defaults); err != nil {
		return fmt.Errorf("per-tenant overrides %s: %w", path, err)
	}
	return nil
}
