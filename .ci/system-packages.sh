#!/usr/bin/env bash
# Debian packages some slow tests need beyond Python's: Chromium for the service's real-browser
# test and the PostgreSQL server for the shared job queue's tests. Installed only where missing
# and where this runs as root with apt; otherwise those tests skip and say why.
set -uo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need+=(postgresql)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system packages missing (${need[*]}): their tests will be skipped" >&2
  exit 0
fi
echo "installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/dev/null \
  || echo "could not install ${need[*]}: their tests will be skipped" >&2
