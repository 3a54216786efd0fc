#!/usr/bin/env bash
# minio-image.sh builds the local Docker image rubato-test/minio:<pinned> that
# integration/minio starts for the S3 tests. No image registry is reachable,
# so the image is made FROM scratch around a static MinIO server built from
# source through the Go module proxy.
#
# Idempotent and cached:
#   - the image already exists                      -> nothing to do;
#   - a cached binary in $RUBATO_CACHE (default $HOME/.cache/rubato) -> reuse it;
#   - /tmp/setup/bin/minio holds the pinned version -> copy it into the cache;
#   - otherwise `CGO_ENABLED=0 go install` (about 3 minutes cold).
#
# Prints the image reference on stdout when done. Needs a running Docker engine
# (scripts/docker-up.sh).
set -euo pipefail

MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
# Keep in sync with integration/minio.DefaultImage.
IMAGE=rubato-test/minio:20260212201848-7aac2a2c5b7c

NAME=minio-image
. "$(dirname "$0")/lib.sh"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
	log "image $IMAGE already present"
	echo "$IMAGE"
	exit 0
fi

bin="$cache/minio-$MINIO_VERSION"
mkdir -p "$cache"

if ! built_from "$bin" "$MINIO_MODULE" "$MINIO_VERSION"; then
	prebuilt=/tmp/setup/bin/minio
	if built_from "$prebuilt" "$MINIO_MODULE" "$MINIO_VERSION"; then
		log "using prebuilt $prebuilt"
		cp "$prebuilt" "$bin.tmp"
	else
		log "building $MINIO_MODULE@$MINIO_VERSION (takes a few minutes)"
		gobin=$(mktemp -d)
		# Run outside any module so the caller's go.mod plays no part.
		(cd "$gobin" && GOBIN="$gobin" CGO_ENABLED=0 GOFLAGS= go install "$MINIO_MODULE@$MINIO_VERSION")
		mv "$gobin/minio" "$bin.tmp"
		rm -rf "$gobin"
	fi
	chmod 0755 "$bin.tmp"
	mv "$bin.tmp" "$bin"
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/tmp" "$ctx/rootfs/data"
chmod 1777 "$ctx/rootfs/tmp"
cp "$bin" "$ctx/rootfs/minio"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV TMPDIR=/tmp
ENTRYPOINT ["/minio"]
CMD ["server", "/data"]
DOCKERFILE

log "building image $IMAGE"
# The classic builder needs no BuildKit/buildx and no network for FROM scratch.
if ! DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$ctx" >/dev/null 2>"$ctx/build.err"; then
	log "docker build failed, falling back to docker import:"
	cat "$ctx/build.err" >&2
	tar -C "$ctx/rootfs" -c . | docker import \
		--change 'ENV TMPDIR=/tmp' \
		--change 'ENTRYPOINT ["/minio"]' \
		--change 'CMD ["server", "/data"]' - "$IMAGE" >/dev/null
fi
log "image $IMAGE ready"
echo "$IMAGE"
