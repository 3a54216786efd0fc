#!/usr/bin/env bash
# consul.sh builds the Consul agent that integration/consul_test.go keeps
# Rubato's rings in (kvstore store: consul), from the Go module
# github.com/hashicorp/consul at CONSUL_VERSION (MPL-2.0; the module proxy
# refuses later versions). No release download or image is needed, and
# Consul stays out of Rubato's own go.mod.
#
# `go install github.com/hashicorp/consul@v1.16.2` is refused (its go.mod
# has exclude directives), so the build goes through a throwaway tools
# module in a temporary directory: it requires Consul, repeats its
# excludes, pins Consul's nested modules (api, sdk, proto-public,
# envoyextensions, troubleshoot; in Consul's repository they are replaced
# by its own directories) at the versions Consul's go.mod requires, and
# builds github.com/hashicorp/consul with CGO_ENABLED=0.
#
# Idempotent and cached like kube.sh:
#   - $RUBATO_CACHE/consul-<version>/consul (default $HOME/.cache/rubato)
#     built from the pinned module -> nothing to do;
#   - otherwise build it (~9 min and 11 CPU-minutes cold on a shared 2-core
#     machine, module downloads included).
#
# Prints the binary's path on stdout when done.
set -euo pipefail

CONSUL_VERSION=v1.16.2
# Keep in sync with integration/consul_test.go (consulVersion).

NAME=consul
. "$(dirname "$0")/lib.sh"
dir="$cache/consul-$CONSUL_VERSION"
bin="$dir/consul"
mkdir -p "$dir"

exit_if_built "$bin" github.com/hashicorp/consul "$CONSUL_VERSION"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CGO_ENABLED=0 GOFLAGS=
log "building consul $CONSUL_VERSION (takes about 10 minutes cold)"

# Consul's own go.mod, from the module proxy: its excludes and the versions
# of its nested modules.
gomod=$(cd "$work" && go mod download -json "github.com/hashicorp/consul@$CONSUL_VERSION" |
	sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
[ -f "$gomod" ] || { log "no go.mod for github.com/hashicorp/consul@$CONSUL_VERSION"; exit 1; }

{
	echo "module rubato.local/consul-build"
	echo
	echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')"
	echo
	echo "tool github.com/hashicorp/consul"
	echo
	echo "require github.com/hashicorp/consul $CONSUL_VERSION"
	# Excludes bind only in the main module: repeat Consul's.
	awk '/^exclude \(/ { on = 1; print; next } on { print; if ($0 ~ /^\)/) on = 0; next } /^exclude / { print }' "$gomod"
	# Nested modules: in the Consul repository they are replaced by
	# ./api etc., which the module zip does not hold; pin the versions
	# Consul's go.mod requires.
	awk '$1 ~ /^github\.com\/hashicorp\/consul\/(api|sdk|proto-public|envoyextensions|troubleshoot)$/ && $2 ~ /^v/ {
		print "replace " $1 " => " $1 " " $2 }' "$gomod"
} >"$work/go.mod"
log "tools module:"
sed 's/^/  /' "$work/go.mod" >&2

if ! (cd "$work" && go mod tidy >"$work/tidy.log" 2>&1); then
	# tidy also resolves the imports of Consul's packages' tests, and
	# fails on any module it cannot fetch or verify (here: checksum
	# database lookups of github.com/hashicorp/hcp-sdk-go answered 404);
	# the build needs only what the binary imports, and go build still
	# verifies every module it uses against go.sum.
	log "go mod tidy failed, retrying with -e:"
	tail -20 "$work/tidy.log" >&2
	(cd "$work" && go mod tidy -e)
fi
(cd "$work" && go build -trimpath -ldflags='-s -w' -o "$work/consul" github.com/hashicorp/consul)
mv "$work/consul" "$bin.tmp"
mv "$bin.tmp" "$bin"
if ! built_from "$bin" github.com/hashicorp/consul "$CONSUL_VERSION"; then
	log "built binary does not carry github.com/hashicorp/consul $CONSUL_VERSION"
	exit 1
fi
log "$bin ready"
echo "$bin"
