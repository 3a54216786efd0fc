package app

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/rubatodb/rubato/distributor/receiver/tlstest"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/yamlkeys"
)

func loadArgs(t *testing.T, yamlText string, args ...string) (*Config, string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yamlText), 0o644))
	var logs bytes.Buffer
	cfg, err := Load(append([]string{"-config.file=" + path}, args...), log.NewLogfmtLogger(&logs))
	return cfg, logs.String(), err
}

const typoConfig = `server:
  http_listen_port: 3300
  htp_listen_address: 127.0.0.1
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpiont: 127.0.0.1:4317
        http:
    zipkin:
      max_request_body_sise: 10
    jaeger:
      protocols:
        thrift_compact:
          wokers: 3
ingester:
  lifecycler:
    ring:
      kvstore:
        stor: consul
storage:
  trace:
    s3:
      bucekt: b
overrides:
  defaults:
    ingestion:
      rate_limt_bytes: 1
  ingestion_rate_limt_bytes: 2
compactor:
  compaction:
    block_retension: 1h
`

var typoPaths = []string{
	"server.htp_listen_address",
	"distributor.receivers.otlp.protocols.grpc.endpiont",
	"distributor.receivers.zipkin.max_request_body_sise",
	"distributor.receivers.jaeger.protocols.thrift_compact.wokers",
	"ingester.lifecycler.ring.kvstore.stor",
	"storage.trace.s3.bucekt",
	"overrides.defaults.ingestion.rate_limt_bytes",
	"overrides.ingestion_rate_limt_bytes",
	"compactor.compaction.block_retension",
}

func TestUnknownKeysAtAnyDepthWarn(t *testing.T) {
	cfg, logs, err := loadArgs(t, typoConfig)
	require.NoError(t, err)
	require.Equal(t, 3300, cfg.Server.HTTPListenPort, "known keys still apply")
	require.Equal(t, 15_000_000, cfg.Overrides.Defaults.IngestionRateLimitBytes, "the typo left the default in force")
	for _, p := range typoPaths {
		require.Contains(t, logs, "key="+p+" ", "no warning naming %s:\n%s", p, logs)
	}
	require.Equal(t, len(typoPaths), strings.Count(logs, "level=warn"), logs)
	require.Contains(t, logs, "key=overrides.defaults.ingestion.rate_limt_bytes line=29", "warnings carry the line (rate_limt_bytes)")
}

func TestStrictMakesUnknownKeysFatal(t *testing.T) {
	_, _, err := loadArgs(t, typoConfig, "-config.strict")
	require.Error(t, err)
	for _, p := range typoPaths {
		require.ErrorContains(t, err, p)
	}
	// The case: one typo in a limit.
	_, _, err = loadArgs(t, "overrides:\n  defaults:\n    ingestion:\n      rate_limt_bytes: 1000\n", "-config.strict")
	require.ErrorContains(t, err, "overrides.defaults.ingestion.rate_limt_bytes (line 4): unknown key")
	// The distributor's and the overrides' newer keys are known (walked from
	// the real types, inline blocks included).
	_, logs, err := loadArgs(t, "distributor:\n  retry_after_on_resource_exhausted: 5s\noverrides:\n  defaults:\n    ingestion:\n      retry_after_on_resource_exhausted: 3s\n      max_live_traces_bytes: 1000000\n", "-config.strict")
	require.NoError(t, err)
	require.NotContains(t, logs, "level=warn")
	// A clean Tempo config passes strict.
	_, logs, err = loadArgs(t, tempoGuideConfig, "-config.strict")
	require.NoError(t, err)
	require.NotContains(t, logs, "level=warn")
}

func TestIgnoredTempoKeysStayWarnings(t *testing.T) {
	doc := `stream_over_http_enabled: true
usage_report:
  reporting_enabled: false
server:
  log_source_ips_enabled: true
distributor:
  log_received_spans:
    enabled: true
  receivers:
    otlp:
      protocols:
        grpc:
          tls:
            cert_file: ` + "{{CERT}}" + `
            key_file: ` + "{{KEY}}" + `
            reload_interval: 1h
`
	certs := tlstest.New(t, t.TempDir())
	doc = strings.NewReplacer("{{CERT}}", certs.CertFile, "{{KEY}}", certs.KeyFile).Replace(doc)
	for _, args := range [][]string{nil, {"-config.strict"}} {
		cfg, logs, err := loadArgs(t, doc, args...)
		require.NoError(t, err, args)
		require.NoError(t, cfg.Validate())
		for _, p := range []string{"stream_over_http_enabled", "usage_report", "server.log_source_ips_enabled",
			"distributor.log_received_spans", "distributor.receivers.otlp.protocols.grpc.tls.reload_interval"} {
			require.Contains(t, logs, "key="+p+" ", logs)
		}
		require.Equal(t, 5, strings.Count(logs, "accepts but does not use"), logs)
	}
}

// TestTLSNeverSilentlyPlaintext is the case: a tls block with
// files that do not exist must stop the start, and a tls key where Rubato
// has no TLS (a UDP receiver, Tempo's server block) is fatal even without
// -config.strict.
func TestTLSNeverSilentlyPlaintext(t *testing.T) {
	cfg, _, err := loadArgs(t, "distributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n          tls:\n            cert_file: /nonexistent/cert.pem\n            key_file: /nonexistent/key.pem\n")
	require.NoError(t, err)
	require.NotNil(t, cfg.Distributor.Receivers.OTLP.GRPC.TLS, "the tls block is decoded")
	require.ErrorContains(t, cfg.Validate(), "/nonexistent/cert.pem")

	for _, doc := range []string{
		"distributor:\n  receivers:\n    jaeger:\n      protocols:\n        thrift_compact:\n          tls:\n            cert_file: a.pem\n",
		"server:\n  http_tls_config:\n    cert_file: a.pem\n",
		"server:\n  tls_min_version: VersionTLS13\n",
	} {
		_, _, err := loadArgs(t, doc)
		require.ErrorContains(t, err, "TLS is not supported here", doc)
	}
	// A bare `tls:` decodes as no block at all: refused, not plaintext.
	_, _, err = loadArgs(t, "distributor:\n  receivers:\n    zipkin:\n      tls:\n")
	require.ErrorContains(t, err, "distributor.receivers.zipkin.tls (line 4): an empty tls block")
	cfg, _, err = loadArgs(t, "distributor:\n  receivers:\n    zipkin:\n      tls: {}\n")
	require.NoError(t, err)
	require.ErrorContains(t, cfg.Validate(), "cert_file and key_file are required")
	// Tempo's manifest lists empty TLS blocks; those set nothing.
	_, logs, err := loadArgs(t, "server:\n  http_tls_config:\n    cert_file: \"\"\n    key_file: null\n")
	require.NoError(t, err)
	require.Contains(t, logs, "key=server.http_tls_config ")
}

func TestPerTenantOverridesFileKeys(t *testing.T) {
	dir := t.TempDir()
	rt := filepath.Join(dir, "overrides.yaml")
	write := func(s string) { require.NoError(t, os.WriteFile(rt, []byte(s), 0o644)) }
	write("overrides:\n  team-a:\n    ingestion:\n      rate_limit_bytes: 100\n      burst_size_bytes: 200\n      rate_limt_bytes: 5\n  \"*\":\n    max_traces_per_usr: 1\n")
	cfg, _, err := loadArgs(t, "overrides:\n  per_tenant_override_config: "+rt+"\n")
	require.NoError(t, err)

	for _, strict := range []bool{false, true} {
		var logs bytes.Buffer
		o := overrides.New(cfg.Overrides)
		o.SetKeyCheck(runtimeKeyCheck(rt, strict, log.NewLogfmtLogger(&logs)))
		err := o.Reload()
		if !strict {
			require.NoError(t, err)
			require.Contains(t, logs.String(), "key=overrides.team-a.ingestion.rate_limt_bytes line=6")
			require.Contains(t, logs.String(), `key=overrides.*.max_traces_per_usr `)
			require.Contains(t, logs.String(), "file="+rt)
			require.Equal(t, 100, o.For("team-a").IngestionRateLimitBytes, "known keys apply")
			// Reloading the same file says nothing new; a changed file is checked again.
			n := strings.Count(logs.String(), "level=warn")
			require.NoError(t, o.Reload())
			require.Equal(t, n, strings.Count(logs.String(), "level=warn"))
			write("overrides:\n  team-b:\n    global:\n      max_bytes_per_trase: 1\n")
			require.NoError(t, o.Reload())
			require.Contains(t, logs.String(), "key=overrides.team-b.global.max_bytes_per_trase")
			continue
		}
		require.ErrorContains(t, err, "overrides.team-b.global.max_bytes_per_trase (line 4): unknown key")
		require.ErrorContains(t, err, rt)
		require.Equal(t, cfg.Overrides.Defaults.MaxBytesPerTrace, o.For("team-b").MaxBytesPerTrace, "a rejected file sets nothing")
	}
}

// TestEveryCustomUnmarshalerHasASchema walks the types reachable from
// Config: a struct or map type with its own UnmarshalYAML must say its
// layout (yamlkeys.Schemer), or keys under it would go unchecked.
func TestEveryCustomUnmarshalerHasASchema(t *testing.T) {
	unm := reflect.TypeFor[yaml.Unmarshaler]()
	sch := reflect.TypeFor[yamlkeys.Schemer]()
	seen := map[reflect.Type]bool{}
	var walk func(typ reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if seen[typ] {
			return
		}
		seen[typ] = true
		custom := typ.Implements(unm) || reflect.PointerTo(typ).Implements(unm)
		schema := typ.Implements(sch) || reflect.PointerTo(typ).Implements(sch)
		if custom && schema {
			walk(reflect.TypeOf(reflect.New(typ).Interface().(yamlkeys.Schemer).YAMLSchema()), path)
			return
		}
		if custom {
			require.NotContains(t, []reflect.Kind{reflect.Struct, reflect.Map}, typ.Kind(),
				"%s (%s) has its own UnmarshalYAML and no YAMLSchema: keys under it are never checked", path, typ)
			return
		}
		switch typ.Kind() {
		case reflect.Struct:
			for i := 0; i < typ.NumField(); i++ {
				if f := typ.Field(i); f.IsExported() || f.Anonymous {
					walk(f.Type, path+"."+f.Name)
				}
			}
		case reflect.Map, reflect.Slice, reflect.Array:
			walk(typ.Elem(), path+"[]")
		}
	}
	walk(reflect.TypeFor[Config](), "Config")
	require.Greater(t, len(seen), 30, "the walk reached the config's types")
}

func TestHelpExitsZeroAndBadFlagsDoNot(t *testing.T) {
	require.Equal(t, 0, Main([]string{"-help"}))
	require.Equal(t, 1, Main([]string{"-no-such-flag"}))
}

// FuzzDecodeConfig: no configuration file makes the loader panic, in
// lenient or strict mode.
func FuzzDecodeConfig(f *testing.F) {
	f.Add([]byte(typoConfig), false)
	f.Add([]byte(tempoGuideConfig), true)
	f.Add([]byte("distributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n          tls:\n"), false)
	f.Add([]byte("overrides:\n  defaults: &d {ingestion: {rate_limit_bytes: 1}}\n  x: *d\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, strict bool) {
		var cfg Config
		newFlagSet(&cfg)
		_ = decodeYAML(data, &cfg, "fuzz.yaml", strict, log.NewNopLogger())
	})
}
