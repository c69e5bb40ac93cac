#!/usr/bin/env bash
# What `make test` needs beyond the venv: headless Chromium (the HTML report and /docs tests), newman
# (the Postman flow test) and a compose tool (the docker-compose.yml check; no engine needed).
# Installs what is missing when it can (root with apt/npm), else says how.
set -euo pipefail
NEWMAN_PREFIX=${NEWMAN_PREFIX:-/opt/newman}
NEWMAN_VERSION=6.2.2

# The outage tests start and stop their own Postgres cluster and Redis (tests/chaos/private_servers.py).
if { ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } \
    || ! command -v redis-server >/dev/null; then
  echo "make test needs the PostgreSQL server programs (initdb, pg_ctl) and redis-server on this machine" >&2
  echo "  apt-get install postgresql redis-server" >&2
  exit 1
fi

missing=()
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then missing+=(chromium); fi
if [ ! -x "$NEWMAN_PREFIX/node_modules/.bin/newman" ] && ! command -v newman >/dev/null; then missing+=(newman); fi
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then missing+=(compose); fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "make test needs: ${missing[*]}" >&2
  echo "  chromium: apt-get install chromium chromium-driver" >&2
  echo "  newman:   npm install --prefix $NEWMAN_PREFIX newman@$NEWMAN_VERSION (Node.js 18+)" >&2
  echo "  compose:  apt-get install --no-install-recommends docker-compose (or Docker's compose plugin)" >&2
  exit 1
fi
for need in "${missing[@]}"; do
  case $need in
    chromium)
      echo "installing chromium for the report test"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null ;;
    newman)
      echo "installing newman for the Postman flow test"
      if ! command -v npm >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
      fi
      npm install --no-audit --no-fund --silent --prefix "$NEWMAN_PREFIX" "newman@$NEWMAN_VERSION" >/dev/null ;;
    compose)
      # Debian's docker-compose: 1.29 (the Python one) on bookworm, 2.x (also `docker compose`) from
      # trixie on. Either validates the file; the engine it recommends is not needed for that.
      echo "installing docker-compose for the compose file check"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null ;;
  esac
done
