#!/usr/bin/env bash
# Debian packages some slow tests need beyond Python's: Chromium for the service's real-browser
# test and the PostgreSQL server for the shared job queue's tests. Installed only where missing
# and where this runs as root with apt. Elsewhere those tests skip and say why; under CI=true a
# package that cannot be installed stops the run here, because CI must not pass without them.
set -uo pipefail
on_ci=false
case "${CI:-}" in 1|true|TRUE|yes) on_ci=true ;; esac
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need+=(postgresql)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
fail() {
  echo "$1" >&2
  if $on_ci; then exit 1; fi
  exit 0
}
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  fail "system packages missing (${need[*]}) and no root apt-get to install them: their tests will not run"
fi
echo "installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/dev/null \
  || fail "could not install ${need[*]}: their tests will not run"
