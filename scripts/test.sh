#!/usr/bin/env bash
# Install digest with its test and lint dependencies into .venv-test, start the services the tests
# use (PostgreSQL; Chromium and SpamAssassin are run by the tests themselves), check style and
# types (ruff, mypy --strict), and run the suite.
# As root on Debian it installs those services from the distribution's packages; elsewhere the
# tests that need them skip with a message.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${DIGEST_TEST_VENV:-.venv-test}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ "${DIGEST_SKIP_APT:-}" != 1 ]; then
  need=()
  command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v spamassassin >/dev/null 2>&1 || need+=(spamassassin)
  if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]} from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

if command -v pg_lsclusters >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')
  if [ -n "$cluster" ]; then
    # shellcheck disable=SC2086
    pg_ctlcluster $cluster start 2>/dev/null || true
    port=$(pg_lsclusters --no-header | awk 'NR==1 {print $3}')
    su postgres -c "psql -q -p $port -c \"ALTER USER postgres PASSWORD 'digest-test'\"" >/dev/null
    export DIGEST_TEST_POSTGRES_URL="postgresql+psycopg://postgres:digest-test@127.0.0.1:${port}/postgres"
    echo "== PostgreSQL on 127.0.0.1:${port}"
  fi
fi

echo "== installing digest[test,dev] into ${VENV}"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q ".[test,dev]"

echo "== ruff check, ruff format --check, mypy --strict (digest, tests, bench, hatch_build.py)"
"$VENV/bin/ruff" check digest tests bench hatch_build.py
"$VENV/bin/ruff" format --check digest tests bench hatch_build.py
"$VENV/bin/mypy" --strict digest tests bench hatch_build.py

echo "== running the tests"
# The installed wheel is tested, not the source tree: the pytest script (unlike `python -m pytest`)
# does not put the repository on sys.path, so templates shipped inside the wheel are what run.
mkdir -p test-artifacts
# On every core (DIGEST_TEST_PROCESSES to choose), a test file to one process: a file's module
# fixtures (a Chromium, a served edition) are made once, and no two files share a port or database
# (tests take free ports and a database of their own). 1 runs the suite in this process.
procs=${DIGEST_TEST_PROCESSES:-auto}
xdist=()
[ "$procs" != 1 ] && xdist=(-n "$procs" --dist loadfile)
exec "$VENV/bin/pytest" -p no:cacheprovider -q -ra "${xdist[@]}" "$@" tests
