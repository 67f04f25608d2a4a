#!/usr/bin/env bash
# duet vs PostgreSQL 15 with pgbench, on this machine, over loopback.
#
#   bench/run.sh                      # 10 s per run
#   BENCH_SECONDS=30 bench/run.sh
#   BENCH_SERVERS=postgres bench/run.sh   # one side only (postgres or duet)
#
# Builds duet in release mode, starts it (--insecure: trust auth, no TLS;
# commits are still synced to disk) and a throwaway PostgreSQL 15 with its
# default settings (fsync=on, synchronous_commit=on), loads the same table
# into both:
#   CREATE TABLE kv (id int primary key, v int) + 100,000 rows (generate_series)
# then runs two pgbench custom scripts with -M prepared, 1 and 8 clients:
#   point select:      SELECT v FROM kv WHERE id = :id
#   single-row update: UPDATE kv SET v = v + 1 WHERE id = :id
# and pgbench's own database (pgbench -i -s 10) with its built-in scripts,
# 8 clients, -M prepared: tpcb-like, simple-update (-N), select-only (-S).
# Prints a markdown table and writes it to docs/benchmarks.md.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bench=$repo/bench
seconds=${BENCH_SECONDS:-10}
rows=${BENCH_ROWS:-100000}
servers=${BENCH_SERVERS:-postgres duet}
clients_list=${BENCH_CLIENTS:-1 8}
scale=${BENCH_SCALE:-10}
# shellcheck source=../tests/support/postgres.sh
source "$repo/tests/support/postgres.sh"

work=$(mktemp -d /tmp/duet-bench.XXXXXX)
duet_pid=
cleanup() {
    if [ -n "$duet_pid" ]; then kill "$duet_pid" 2>/dev/null || true; wait "$duet_pid" 2>/dev/null || true; fi
    pg_stop
    rm -rf "$work"
}
trap cleanup EXIT

log() { echo "bench: $*" >&2; }

# Waits until a server answers a query (60 s at most).
wait_ready() {
    local url=$1
    for _ in $(seq 600); do
        psql -X -q -d "$url" -c 'SELECT 1' >/dev/null 2>&1 && return 0
        if [ -n "$duet_pid" ] && ! kill -0 "$duet_pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    log "server at $url did not come up"
    return 1
}

load() {
    local url=$1
    psql -X -q -v ON_ERROR_STOP=1 -d "$url" \
        -c 'CREATE TABLE kv (id int primary key, v int)' \
        -c "INSERT INTO kv SELECT g, 0 FROM generate_series(1, $rows) AS g"
}

load_pgbench() {
    local url=$1
    log "pgbench -i -s $scale on $url"
    pgbench -i -q -s "$scale" "$url" >/dev/null 2>&1
}

# The pgbench arguments of a workload: a custom script or a built-in one.
workload_args() {
    case $1 in
        tpcb-like) echo "-b tpcb-like" ;;
        simple-update) echo "-N" ;;
        select-only) echo "-S" ;;
        *) echo "-f $bench/$1" ;;
    esac
}

# Prints the tps of one pgbench run.
run_pgbench() {
    local url=$1 script=$2 clients=$3 threads out
    threads=$(( clients < $(nproc) ? clients : $(nproc) ))
    # shellcheck disable=SC2046
    out=$(pgbench -n -M prepared $(workload_args "$script") -c "$clients" -j "$threads" -T "$seconds" "$url" 2>&1) || {
        log "pgbench failed:"; echo "$out" >&2; echo "n/a"; return
    }
    local failed
    failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
    [ "${failed:-0}" = 0 ] || log "$script with $clients clients: $failed failed transactions"
    echo "$out" | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' | xargs -r printf '%.0f\n'
}

declare -A url
if [[ " $servers " == *" postgres "* ]]; then
    pg_start
    trap cleanup EXIT # pg_start installs its own EXIT trap; ours stops it too
    url[postgres]=$PG_URL
    load "${url[postgres]}"
    psql -X -q -d "${url[postgres]}" -c 'VACUUM ANALYZE kv'
    load_pgbench "${url[postgres]}"
fi
if [[ " $servers " == *" duet "* ]]; then
    log "cargo build --release -p duet"
    (cd "$repo" && cargo build --release -p duet)
    target=${CARGO_TARGET_DIR:-$repo/target}
    port=$(pg_free_port)
    http=$(pg_free_port)
    "$target/release/duet" start --insecure --listen "127.0.0.1:$port" --http-listen "127.0.0.1:$http" \
        --data-dir "$work/duet-data" --certs-dir "$work/certs" >"$work/duet.log" 2>&1 &
    duet_pid=$!
    url[duet]="postgresql://root@127.0.0.1:$port/defaultdb?sslmode=disable"
    wait_ready "${url[duet]}" || { tail -50 "$work/duet.log" >&2; exit 1; }
    load "${url[duet]}"
    load_pgbench "${url[duet]}"
fi

# workload:client counts
clients_csv=$(echo "$clients_list" | tr ' ' ,)
workloads="point_select.sql:$clients_csv update.sql:$clients_csv tpcb-like:8 simple-update:8 select-only:8"
declare -A tps
for workload in $workloads; do
    script=${workload%%:*}
    for clients in $(echo "${workload#*:}" | tr , ' '); do
        for server in $servers; do
            log "$server: $script, $clients clients, ${seconds}s"
            tps[$server,$script,$clients]=$(run_pgbench "${url[$server]}" "$script" "$clients")
        done
    done
done

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", b / a; else print "n/a" }'
}

table=$(
    echo "| workload | clients | PostgreSQL tps | duet tps | duet / PostgreSQL |"
    echo "|---|---:|---:|---:|---:|"
    for workload in $workloads; do
        script=${workload%%:*}
        case $script in
            point_select.sql) name="point select" ;;
            update.sql) name="single-row update" ;;
            *) name="pgbench $script (scale $scale)" ;;
        esac
        for clients in $(echo "${workload#*:}" | tr , ' '); do
            pg=${tps[postgres,$script,$clients]:-n/a}
            du=${tps[duet,$script,$clients]:-n/a}
            echo "| $name | $clients | ${pg:-n/a} | ${du:-n/a} | $(ratio "$pg" "$du") |"
        done
    done
)
echo "$table"

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
# Keep the hand-written notes and the replication section below the marker.
marker='<!-- everything below this line is kept by bench/run.sh -->'
kept=$(sed -n "/$(printf '%s' "$marker" | sed 's/[^^]/[&]/g; s/\^/\\^/g')/,\$p" "$repo/docs/benchmarks.md" 2>/dev/null || true)
cat >"$repo/docs/benchmarks.md" <<MD
# Benchmarks

duet against PostgreSQL 15 on the same machine, both over loopback TCP,
driven by \`pgbench -M prepared\` with custom scripts (\`bench/*.sql\`).

* Method: \`bench/run.sh\` builds duet in release mode and starts it with
  \`--insecure\` (trust auth, no TLS; commits are synced to disk, fsync on),
  and a throwaway PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') with default settings (fsync=on,
  synchronous_commit=on). Both get \`CREATE TABLE kv (id int primary key,
  v int)\` with $rows rows from \`generate_series\`. Workloads: point select
  (\`SELECT v FROM kv WHERE id = :id\`) and single-row update
  (\`UPDATE kv SET v = v + 1 WHERE id = :id\`), \`id\` uniformly random;
  and pgbench's own tables (\`pgbench -i -s $scale\`) with its built-in
  scripts tpcb-like, simple-update (\`-N\`) and select-only (\`-S\`);
  ${seconds} s per run; tps excludes connection time.
* Machine: $(nproc) CPUs ($cpu), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM.
* Command: \`BENCH_SECONDS=$seconds bench/run.sh\` ($(date -u +%Y-%m-%d)).

$table
MD
if [ -n "$kept" ]; then printf '\n%s\n' "$kept" >>"$repo/docs/benchmarks.md"; fi
log "wrote docs/benchmarks.md"
