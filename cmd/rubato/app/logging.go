package app

import (
	"context"
	"os"
	"os/signal"
	"regexp"
	"syscall"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

func newLogger(cfg ServerConfig) log.Logger {
	var l log.Logger
	if cfg.LogFormat == "json" {
		l = log.NewJSONLogger(log.NewSyncWriter(os.Stderr))
	} else {
		l = log.NewLogfmtLogger(log.NewSyncWriter(os.Stderr))
	}
	var opt level.Option
	switch cfg.LogLevel {
	case "debug":
		opt = level.AllowDebug()
	case "warn":
		opt = level.AllowWarn()
	case "error":
		opt = level.AllowError()
	default:
		opt = level.AllowInfo()
	}
	return log.With(level.NewFilter(l, opt), "ts", log.DefaultTimestampUTC, "caller", log.DefaultCaller)
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

var secretLine = regexp.MustCompile(`(?m)^(\s*(?:secret_key|session_token|access_key|password)\s*:\s*).+$`)

// redactSecrets hides credentials in a YAML dump.
func redactSecrets(b []byte) []byte {
	return secretLine.ReplaceAll(b, []byte("${1}<redacted>"))
}
