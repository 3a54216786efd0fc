// Command rubato-bench is Rubato's reproducible end-to-end benchmark: it
// starts a rubato binary, pushes traces over OTLP gRPC, flushes, restarts
// the server so that every lookup is served from backend blocks, looks
// every trace up, and prints throughput, server CPU per million spans, peak
// RSS, bytes on disk per span and lookup latency.
//
//	go run ./cmd/rubato-bench -spans 2000000
//
// With -soak 30m it runs the soak instead (soak.go); with -cluster it
// compares the CPU per span of an RF3 cluster with the single binary's
// (cluster.go).
//
// Figures come from the server process (/proc), not from the client.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	var cfg config
	cfg.registerFlags(flag.CommandLine)
	soak := registerSoakFlags(flag.CommandLine)
	flag.Parse()
	var err error
	switch {
	case soak.duration > 0:
		err = runSoak(cfg, soak)
	case cfg.cluster:
		err = runCluster(cfg)
	case cfg.bigTraceMB > 0:
		err = runBigTrace(cfg)
	default:
		err = run(cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rubato-bench:", err)
		os.Exit(1)
	}
}
