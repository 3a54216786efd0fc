#!/usr/bin/env bash
# otelcol.sh builds the OpenTelemetry Collector that integration/collector_test.go
# runs in front of Rubato: core components only (otlp receiver,
# memory_limiter and batch processors, otlp gRPC exporter), built from Go
# modules with the Collector's own builder (ocb), pinned to OTELCOL_VERSION.
#
# Idempotent and cached like minio-image.sh:
#   - $RUBATO_CACHE/otelcol-rubato-<version> (default $HOME/.cache/rubato) built
#     from the pinned modules -> nothing to do;
#   - otherwise install the builder and build (a few minutes cold).
#
# Prints the binary's path on stdout when done.
set -euo pipefail

OTELCOL_VERSION=v0.165.0
# Keep in sync with integration/collector_test.go (otelcolVersion).
NAME=otelcol-rubato # the Collector's dist name, and the log's prefix
. "$(dirname "$0")/lib.sh"
bin="$cache/$NAME-$OTELCOL_VERSION"
mkdir -p "$cache"

# The binary is built right when it holds the pinned otlp receiver.
exit_if_built "$bin" go.opentelemetry.io/collector/receiver/otlpreceiver "$OTELCOL_VERSION"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "installing go.opentelemetry.io/collector/cmd/builder@$OTELCOL_VERSION"
# Run outside any module so the caller's go.mod plays no part.
(cd "$work" && GOBIN="$work/bin" GOFLAGS= go install "go.opentelemetry.io/collector/cmd/builder@$OTELCOL_VERSION")

cat >"$work/manifest.yaml" <<MANIFEST
dist:
  name: $NAME
  description: OpenTelemetry Collector for Rubato's integration tests
  output_path: $work/out
receivers:
  - gomod: go.opentelemetry.io/collector/receiver/otlpreceiver $OTELCOL_VERSION
processors:
  - gomod: go.opentelemetry.io/collector/processor/batchprocessor $OTELCOL_VERSION
  - gomod: go.opentelemetry.io/collector/processor/memorylimiterprocessor $OTELCOL_VERSION
exporters:
  - gomod: go.opentelemetry.io/collector/exporter/otlpexporter $OTELCOL_VERSION
MANIFEST

log "building $NAME $OTELCOL_VERSION (takes a few minutes)"
export CGO_ENABLED=0 GOFLAGS=
if ! (cd "$work" && ./bin/builder --config manifest.yaml >"$work/build.log" 2>&1); then
	# The module step can trip over a module only the components' tests
	# need; tidy leniently and build what was generated.
	log "builder failed, retrying after go mod tidy -e:"
	tail -20 "$work/build.log" >&2
	(cd "$work/out" && go mod tidy -e)
	(cd "$work" && ./bin/builder --config manifest.yaml --skip-generate --skip-get-modules)
fi
chmod 0755 "$work/out/$NAME"
mv "$work/out/$NAME" "$bin.tmp"
mv "$bin.tmp" "$bin"
log "$bin ready"
echo "$bin"
