#!/usr/bin/env bash
# docker-up.sh makes sure a Docker engine answers on this machine, for the
# MinIO-backed tests (integration/minio). Idempotent: when `docker info` already
# works it does nothing.
#
# Where no engine runs it installs Debian's docker.io (if dockerd is missing)
# and starts dockerd in the background with --iptables=false
# --ip6tables=false: test containers use host networking and listen on
# 127.0.0.1 only, so no NAT or published ports are needed. Docker's default
# bridge is left in place. The daemon log goes to /tmp/rubato-dockerd.log.
set -euo pipefail

log() { echo "docker-up: $*" >&2; }

if docker info >/dev/null 2>&1; then
	log "docker engine already running"
	exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
	log "installing docker.io"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y docker.io >/tmp/rubato-docker-apt.log 2>&1; then
		apt-get update >>/tmp/rubato-docker-apt.log 2>&1
		apt-get install -y docker.io >>/tmp/rubato-docker-apt.log 2>&1
	fi
fi

if ! command -v docker >/dev/null 2>&1; then
	log "docker client missing after install" >&2
	exit 1
fi

logfile=/tmp/rubato-dockerd.log
log "starting dockerd (log: $logfile)"
# setsid + nohup: the daemon outlives this script and the shell that ran it.
setsid nohup dockerd --iptables=false --ip6tables=false >"$logfile" 2>&1 </dev/null &

for _ in $(seq 1 60); do
	if docker info >/dev/null 2>&1; then
		log "docker engine ready"
		exit 0
	fi
	sleep 1
done

log "dockerd did not become ready within 60s; last log lines:"
tail -n 30 "$logfile" >&2 || true
exit 1
