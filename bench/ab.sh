#!/usr/bin/env bash
# A/B of two duet binaries on this machine: same table, same pgbench
# scripts, runs alternating between the two (which goes first alternates
# by round), because this kind of VM drifts by tens of percent within
# minutes. Prints one line per run: workload, clients, round, side, tps.
#
#   bench/ab.sh OLD_DUET NEW_DUET
#   AB_WORKLOADS="point_select.sql:8 update.sql:1" AB_ROUNDS=5 AB_SECONDS=20 bench/ab.sh A B
#   AB_SETUP_SQL="VACUUM kv; VACUUM kv" bench/ab.sh A B   # run on both after the load
#
# Build the two binaries first, e.g. with a git worktree of the older
# commit and `cargo build --release -p duet` in each, copying each binary
# out of the target directory before building the other.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 OLD_DUET NEW_DUET" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
declare -A bin=([a]=$1 [b]=$2)
rows=${AB_ROWS:-100000}
rounds=${AB_ROUNDS:-3}
seconds=${AB_SECONDS:-10}
# The updates go first: the reads after them meet a memtable full of
# row versions, as in bench/run.sh.
workloads=${AB_WORKLOADS:-update.sql:8 point_select.sql:8 update.sql:1 point_select.sql:1}
# shellcheck source=../tests/support/postgres.sh
source "$repo/tests/support/postgres.sh"
# shellcheck source=lib.sh
source "$repo/bench/lib.sh"

work=$(mktemp -d /tmp/duet-ab.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

declare -A url
for side in a b; do
    port=$(pg_free_port)
    http=$(pg_free_port)
    "${bin[$side]}" start --insecure --listen "127.0.0.1:$port" --http-listen "127.0.0.1:$http" \
        --data-dir "$work/$side/data" --certs-dir "$work/$side/certs" >"$work/$side.log" 2>&1 &
    pids+=($!)
    url[$side]="postgresql://root@127.0.0.1:$port/defaultdb?sslmode=disable"
    wait_ready "${url[$side]}" "${pids[-1]}" || { tail -20 "$work/$side.log" >&2; exit 1; }
    load_kv "${url[$side]}" "$rows"
    # Statements to run on both after the load, separated by ";".
    IFS=';' read -ra setup <<<"${AB_SETUP_SQL:-}"
    for statement in "${setup[@]}"; do
        [ -n "${statement// /}" ] && psql -X -q -v ON_ERROR_STOP=1 -d "${url[$side]}" -c "$statement"
    done
done

tps() {
    pgbench -n -M prepared -f "$repo/bench/$2" -c "$3" -j "$(( $3 < $(nproc) ? $3 : $(nproc) ))" \
        -T "$seconds" "${url[$1]}" 2>&1 | sed -n 's/^tps = \([0-9.]*\) (without.*/\1/p'
}

for workload in $workloads; do
    script=${workload%%:*}
    clients=${workload#*:}
    for round in $(seq "$rounds"); do
        order="a b"
        (( round % 2 == 0 )) && order="b a"
        for side in $order; do
            echo "$script clients=$clients round=$round $side=${bin[$side]} tps=$(tps "$side" "$script" "$clients")"
        done
    done
done
