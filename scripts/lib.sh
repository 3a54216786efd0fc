# lib.sh is sourced by the scripts that build a pinned tool into the cache
# ($RUBATO_CACHE, default ~/.cache/rubato): set NAME before sourcing.

# shellcheck disable=SC2034 # cache is used by the sourcing script
cache=${RUBATO_CACHE:-${HOME:-/root}/.cache/rubato}

log() { echo "$NAME: $*" >&2; }

# built_from BIN MODULE VERSION reports whether the Go binary BIN exists
# and was built from (or with the dependency) MODULE at VERSION.
built_from() {
	[ -x "$1" ] && go version -m "$1" 2>/dev/null | awk -v m="$2" -v v="$3" \
		'($1 == "mod" || $1 == "dep") && $2 == m && $3 == v { found = 1 } END { exit !found }'
}

# exit_if_built BIN MODULE VERSION prints BIN and exits if it is built
# from MODULE at VERSION already.
exit_if_built() {
	if built_from "$@"; then
		log "$1 already built"
		echo "$1"
		exit 0
	fi
}
