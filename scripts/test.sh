#!/usr/bin/env bash
# test.sh runs Rubato's whole test suite on a fresh machine: it sets up what
# the tests need (a Docker engine and the locally built MinIO image for the
# object-storage tests), vets, runs every test, then runs each fuzz target
# briefly, and ends with one line counting tests passed and failed.
# Idempotent; safe to run again.
#
#   FUZZTIME=10s scripts/test.sh   # longer fuzzing (default 3s per target)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/docker-up.sh
bash scripts/minio-image.sh >/dev/null
bash scripts/otelcol.sh >/dev/null
bash scripts/helm.sh >/dev/null
bash scripts/kube.sh >/dev/null
bash scripts/consul.sh >/dev/null

echo "== go vet"
go vet ./...

echo "== go test"
log=$(mktemp /tmp/rubato-test.XXXXXX)
set +e
go test -count=1 -timeout 30m -v ./... >"$log" 2>&1
status=$?
# The Helm chart's checks: a module of their own (k8s.io/* stays out of go.mod).
(cd deploy/helm/chartcheck && go vet ./... && go test -count=1 -timeout 20m -v ./...) >>"$log" 2>&1 || status=$?
# helm install/upgrade on kube-apiserver and etcd (scripts/kube.sh): its own module too.
(cd deploy/helm/kubetest && go vet ./... && go test -count=1 -timeout 20m -v ./...) >>"$log" 2>&1 || status=$?
set -e
grep -E '^(ok|FAIL|\?) ' "$log" || true
passed=$(grep -cE '^\s*--- PASS' "$log" || true)
failed=$(grep -cE '^\s*--- FAIL' "$log" || true)
if [ "$status" -ne 0 ]; then
	echo "== failures"
	grep -E -B3 -A60 -- '--- FAIL|^panic:' "$log" | head -400 || tail -200 "$log"
	echo "tests: $passed passed, $failed failed"
	exit "$status"
fi

echo "== fuzz (${FUZZTIME:-3s} per target)"
bash scripts/fuzz.sh "${FUZZTIME:-3s}"

echo "tests: $passed passed, $failed failed"
