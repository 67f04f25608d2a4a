#!/usr/bin/env bash
# Checks the conformance corpus (tests/sql/*.slt) and the end-to-end tests
# that need no duet-specific feature against a throwaway PostgreSQL 15:
# the expected results in this repository are PostgreSQL's.
#
#   tests/sql/run-against-postgres.sh              # everything
#   tests/sql/run-against-postgres.sh types        # a filter, as for cargo test
#
# It runs the same test binaries as `cargo test`, with DUET_SLT_URL (the
# sqllogictest runner) and DUET_EXTERNAL_URL (client and psql tests) pointed
# at PostgreSQL; tests that need a duet node say "skipped".
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../support/postgres.sh
source "$repo/tests/support/postgres.sh"

pg_start
cd "$repo"
DUET_SLT_URL=$PG_URL DUET_EXTERNAL_URL=$PG_URL \
    cargo test -p duet-tests --test sqllogictest --test client --test psql_walkthrough --test copy --test pgbench --test databases --test python_clients -- "$@"
