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
NAME=otelcol-rubato

log() { echo "otelcol: $*" >&2; }

cache=${RUBATO_CACHE:-${HOME:-/root}/.cache/rubato}
bin="$cache/$NAME-$OTELCOL_VERSION"
mkdir -p "$cache"

# has_version reports whether binary $1 holds the pinned otlp receiver.
has_version() {
	go version -m "$1" 2>/dev/null | awk -v v="$OTELCOL_VERSION" \
		'$1 == "dep" && $2 == "go.opentelemetry.io/collector/receiver/otlpreceiver" && $3 == v { found = 1 } END { exit !found }'
}

if [ -x "$bin" ] && has_version "$bin"; then
	log "$bin already built"
	echo "$bin"
	exit 0
fi

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
