#!/usr/bin/env bash
# fuzz.sh runs every FuzzXxx target in the repository for the given time
# each (default 3s), one at a time. New crashers land in the package's
# testdata/fuzz/ and fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-3s}"
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
	pkg="./$(dirname "${file#./}")"
	for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
		echo "fuzz $pkg $target"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -parallel 1 "$pkg" >/tmp/rubato-fuzz.log 2>&1 || {
			cat /tmp/rubato-fuzz.log
			exit 1
		}
	done
done
echo "fuzz: all targets passed"
