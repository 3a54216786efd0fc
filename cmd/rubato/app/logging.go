package app

import (
	"context"
	"os"
	"os/signal"
	"regexp"
	"sync"
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

// signalContext is cancelled by the first SIGINT or SIGTERM, which starts
// a graceful stop. A second one exits at once with status 1, as a kill
// would: nothing acknowledged is lost (it is in the WAL, replayed at the
// next start), and an operator can cut a stop that waits on slow clients.
func signalContext(logger log.Logger) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			level.Info(logger).Log("msg", "stopping gracefully; send the signal again to exit at once", "signal", s)
			cancel()
		case <-done:
			return
		}
		select {
		case s := <-ch:
			level.Warn(logger).Log("msg", "second signal: exiting at once; the WAL is replayed at the next start", "signal", s)
			os.Exit(1)
		case <-done:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
			cancel()
		})
	}
}

var secretLine = regexp.MustCompile(`(?m)^(\s*(?:secret_key|session_token|access_key|password)\s*:\s*).+$`)

// redactSecrets hides credentials in a YAML dump.
func redactSecrets(b []byte) []byte {
	return secretLine.ReplaceAll(b, []byte("${1}<redacted>"))
}
