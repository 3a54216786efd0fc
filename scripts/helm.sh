#!/usr/bin/env bash
# helm.sh provides the Helm v3 binary that deploy/helm/chartcheck runs
# (helm lint --strict, helm template), built from Go modules with
# `go install`, pinned to HELM_VERSION. No chart repository or release
# download is needed.
#
# Idempotent and cached like otelcol.sh:
#   - $RUBATO_CACHE/helm-<version> (default $HOME/.cache/rubato) built from
#     the pinned module -> nothing to do;
#   - otherwise `go install helm.sh/helm/v3/cmd/helm@<version>` (a few
#     minutes cold).
#
# Prints the binary's path on stdout when done.
set -euo pipefail

HELM_VERSION=v3.22.0
# Keep in sync with deploy/helm/chartcheck (helmVersion).

NAME=helm
. "$(dirname "$0")/lib.sh"
bin="$cache/helm-$HELM_VERSION"
mkdir -p "$cache"

exit_if_built "$bin" helm.sh/helm/v3 "$HELM_VERSION"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "building helm.sh/helm/v3/cmd/helm@$HELM_VERSION (takes a few minutes)"
# Run outside any module so the caller's go.mod plays no part.
(cd "$work" && GOBIN="$work/bin" CGO_ENABLED=0 GOFLAGS= go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION")
mv "$work/bin/helm" "$bin.tmp"
mv "$bin.tmp" "$bin"
log "$bin ready"
echo "$bin"
