#!/usr/bin/env bash
# kube.sh builds the kube-apiserver and etcd that deploy/helm/kubetest runs
# `helm install` and `helm upgrade` against, from Go modules: the tools
# module deploy/helm/kubetest pins k8s.io/kubernetes (with its staging
# modules at the matching v0.x) and go.etcd.io/etcd/server/v3 at the version
# that Kubernetes release requires. No release download or image is needed,
# and k8s.io/kubernetes stays out of Rubato's own go.mod.
#
# Idempotent and cached like helm.sh:
#   - $RUBATO_CACHE/kube-<version>/{kube-apiserver,etcd} (default
#     $HOME/.cache/rubato) built from the pinned modules -> nothing to do;
#   - otherwise build both (Kubernetes is large: ~18 min and 17.5
#     CPU-minutes cold on a shared 2-core machine).
#
# Prints the directory holding both binaries on stdout when done.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBE_VERSION=v1.36.3
ETCD_VERSION=v3.6.8
# Keep in sync with deploy/helm/kubetest/go.mod and kubetest's kubeVersion.

log() { echo "kube: $*" >&2; }

cache=${RUBATO_CACHE:-${HOME:-/root}/.cache/rubato}
dir="$cache/kube-$KUBE_VERSION"
mkdir -p "$dir"

# has_dep reports whether binary $1 was built with module $2 at version $3.
has_dep() {
	go version -m "$1" 2>/dev/null | awk -v m="$2" -v v="$3" \
		'($1 == "dep" || $1 == "mod") && $2 == m && $3 == v { found = 1 } END { exit !found }'
}

built() {
	[ -x "$dir/kube-apiserver" ] && has_dep "$dir/kube-apiserver" k8s.io/kubernetes "$KUBE_VERSION" &&
		[ -x "$dir/etcd" ] && has_dep "$dir/etcd" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
}

if built; then
	log "$dir already built"
	echo "$dir"
	exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "building kube-apiserver $KUBE_VERSION and etcd $ETCD_VERSION (takes a long time cold)"
# The tools module's go.mod and go.sum are the pins (its `tool` lines).
export CGO_ENABLED=0 GOFLAGS=
for tool in kube-apiserver:k8s.io/kubernetes/cmd/kube-apiserver etcd:go.etcd.io/etcd/server/v3; do
	(cd deploy/helm/kubetest && go build -trimpath -ldflags='-s -w' -o "$work/${tool%%:*}" "${tool#*:}")
done
for b in kube-apiserver etcd; do
	mv "$work/$b" "$dir/$b.tmp"
	mv "$dir/$b.tmp" "$dir/$b"
done
if ! built; then
	log "built binaries do not carry the pinned versions ($KUBE_VERSION, $ETCD_VERSION)"
	exit 1
fi
log "$dir ready"
echo "$dir"
