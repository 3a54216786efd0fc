package app

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"go.yaml.in/yaml/v3"

	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/yamlkeys"
)

// ignoredTempoKeys are Tempo settings Rubato accepts and does not use,
// because they tune machinery Rubato does not have. The loader names each
// one in a warning, also under -config.strict.
var ignoredTempoKeys = []string{
	"stream_over_http_enabled",
	"usage_report",
	"memory",
	"metrics_generator_enabled",
	"metrics_generator",
	// dskit server keys for logging, tracing and statistics Rubato does
	// not have; the rest of the server block is honoured (ServerConfig).
	"server.log_source_ips_enabled",
	"server.log_source_ips_full",
	"server.log_source_ips_header",
	"server.log_source_ips_regex",
	"server.log_request_headers",
	"server.log_request_exclude_headers_list",
	"server.log_request_at_info_level_enabled",
	"server.trace_request_headers",
	"server.trace_request_exclude_headers_list",
	"server.http_log_closed_connections_without_response_enabled",
	"server.grpc_collect_max_streams_by_conn",
	"server.grpc_server_stats_tracking_enabled",
	"server.grpc_server_recv_buffer_pools_enabled",
	"server.create_new_traces",
	"distributor.log_received_spans",
	"distributor.log_discarded_spans",
	"querier.frontend_worker.grpc_client_config",
	"querier.frontend_worker.match_max_concurrent",
	"storage.trace.pool",
	"storage.trace.wal.v2_encoding",
	"storage.trace.wal.search_encoding",
	"storage.trace.block.version",
	"storage.trace.block.v2_encoding",
	"storage.trace.block.v2_index_downsample_bytes",
	"storage.trace.block.v2_index_page_size_bytes",
	"storage.trace.block.parquet_row_group_size_bytes",
}

// checkKeys reports the keys of doc that Rubato does not use: each is
// logged as a warning with its full path; under strict, unknown keys are
// an error (ignored Tempo keys stay warnings). An unknown key that names
// TLS with a value is an error even without strict: Rubato cannot honour
// it, and must not serve plaintext where TLS was asked for.
func checkKeys(doc *yaml.Node, schema any, source string, strict bool, ignored []string, logger log.Logger) error {
	fatal := emptyTLSBlocks(doc, "")
	for _, f := range yamlkeys.Check(doc, schema, yamlkeys.Options{Ignored: ignored}) {
		switch {
		case f.Ignored:
			level.Warn(logger).Log("msg", "ignoring Tempo configuration key Rubato accepts but does not use", "file", source, "key", f.Path, "line", f.Line)
		case namesTLS(f.Path) && f.SetsValue():
			fatal = append(fatal, fmt.Sprintf("%s (line %d): TLS is not supported here; refusing to start rather than serve plaintext", f.Path, f.Line))
		case strict:
			fatal = append(fatal, fmt.Sprintf("%s (line %d): unknown key", f.Path, f.Line))
		default:
			level.Warn(logger).Log("msg", "unknown configuration key, ignored (a typo leaves the default in force; -config.strict makes this fatal)", "file", source, "key", f.Path, "line", f.Line)
		}
	}
	if len(fatal) > 0 {
		return errors.New(strings.Join(fatal, "; "))
	}
	return nil
}

// emptyTLSBlocks finds `tls:` keys with no value: YAML decodes them as no
// TLS block at all, which would serve plaintext where TLS was named.
func emptyTLSBlocks(n *yaml.Node, path string) []string {
	var out []string
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			out = append(out, emptyTLSBlocks(c, path)...)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + p
			}
			if k.Value == "tls" && v.Kind == yaml.ScalarNode && (v.Tag == "!!null" || v.Value == "") {
				out = append(out, fmt.Sprintf("%s (line %d): an empty tls block; set cert_file and key_file, or remove it for plaintext", p, k.Line))
				continue
			}
			out = append(out, emptyTLSBlocks(v, p)...)
		}
	}
	return out
}

// namesTLS reports whether the last key of path is a TLS setting.
func namesTLS(path string) bool {
	k := path[strings.LastIndexByte(path, '.')+1:]
	return k == "tls" || strings.HasPrefix(k, "tls_") || strings.HasSuffix(k, "_tls_config")
}

// runtimeKeyCheck returns the key check of the per-tenant overrides file,
// run by every reload (overrides.SetKeyCheck): it warns about unknown keys
// (under strict, rejects the file) once per distinct content, so a file
// reloaded every few seconds is not reported every few seconds.
func runtimeKeyCheck(path string, strict bool, logger log.Logger) func([]byte) error {
	var (
		mu      sync.Mutex
		last    [sha256.Size]byte
		lastErr error
		checked bool
	)
	return func(data []byte) error {
		sum := sha256.Sum256(data)
		mu.Lock()
		defer mu.Unlock()
		if checked && sum == last {
			return lastErr
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil // the overrides parser reports it
		}
		lastErr = checkKeys(&doc, overrides.RuntimeYAMLSchema(), path, strict, nil, logger)
		if lastErr != nil {
			lastErr = fmt.Errorf("per-tenant overrides %s: %w", path, lastErr)
		}
		last, checked = sum, true
		return lastErr
	}
}
