#!/usr/bin/env bash
# rubato-image.sh builds Rubato's container image without any image
# registry: the static binary (CGO_ENABLED=0) is built on the host, CA
# certificates come from the host's Debian ca-certificates package, and
# only the final FROM scratch stage of the repository's Dockerfile is run,
# with its `COPY --from=build /out/...` lines read from a local build
# context laid out as the Dockerfile's build stage lays out /out/.
#
#   scripts/rubato-image.sh                      # builds rubato:dev
#   RUBATO_IMAGE=rubato-test/rubato:it scripts/rubato-image.sh
#
# Always rebuilds (the Go build cache makes that quick), so the image holds
# the working tree's code. Prints the image reference on stdout. Needs a
# running Docker engine (scripts/docker-up.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${RUBATO_IMAGE:-rubato:dev}
VERSION=${RUBATO_VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
CA=/etc/ssl/certs/ca-certificates.crt

log() { echo "rubato-image: $*" >&2; }

if [ ! -s "$CA" ]; then
	log "installing Debian's ca-certificates for $CA"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y ca-certificates >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y ca-certificates >/dev/null; }
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root="$ctx/out/rootfs"
mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$ctx/out/data"
chmod 1777 "$root/tmp"
cp "$CA" "$root/etc/ssl/certs/ca-certificates.crt"
echo 'rubato:x:10001:10001:rubato:/var/rubato:/nonexistent' >"$root/etc/passwd"
echo 'rubato:x:10001:' >"$root/etc/group"

log "building the static binary ($VERSION)"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/rubatodb/rubato/cmd/rubato/app.Version=$VERSION" -o "$root/rubato" ./cmd/rubato

# The final stage: from "FROM scratch" to the end, with the build stage's
# /out/ mapped onto this context.
awk '/^FROM scratch/ { on = 1 } on' Dockerfile | sed -e 's#--from=build ##' -e 's# /out/# out/#' >"$ctx/Dockerfile"
if ! grep -q '^FROM scratch' "$ctx/Dockerfile" || grep -q -- '--from=' "$ctx/Dockerfile"; then
	log "Dockerfile's final stage is not FROM scratch with COPY --from=build /out/... lines; update this script"
	exit 1
fi

log "building image $IMAGE"
# The classic builder needs no BuildKit/buildx and no network for FROM scratch.
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$ctx" >/dev/null
log "image $IMAGE ready"
echo "$IMAGE"
