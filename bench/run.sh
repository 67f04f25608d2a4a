#!/usr/bin/env bash
# duet vs PostgreSQL 15 with pgbench, on this machine, over loopback.
#
#   bench/run.sh                      # 3 rounds of 10 s per server, in 5 slices of 2 s
#   BENCH_SECONDS=30 BENCH_ROUNDS=5 bench/run.sh
#   BENCH_SERVERS=postgres bench/run.sh   # one side only (postgres or duet)
#   BENCH_WORKLOADS="update.sql:1 tpcb-like:8" bench/run.sh   # a subset (the table then has only those rows)
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
# Every workload runs BENCH_ROUNDS times on each server. A small VM's
# speed drifts by tens of percent within seconds, so a round's
# BENCH_SECONDS per server are cut into BENCH_SLICES runs of pgbench
# that alternate between the two servers (A B B A A ...; which one goes
# first alternates by round), and a round's tps is its slices'
# transactions over their time: both sides meet the same drift. The
# table gives the median tps of each side and the median (and range) of
# the rounds' ratios, and each server's CPU time per transaction (its
# processes, from /proc; pgbench not counted): busy polling, for one, buys
# latency with CPU, and this shows what it costs.
# Prints a markdown table and writes it to docs/benchmarks.md.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bench=$repo/bench
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
slices=${BENCH_SLICES:-5}
(( seconds % slices == 0 )) || { echo "bench: BENCH_SECONDS must be a multiple of BENCH_SLICES" >&2; exit 2; }
slice_seconds=$(( seconds / slices ))
rows=${BENCH_ROWS:-100000}
servers=${BENCH_SERVERS:-postgres duet}
clients_list=${BENCH_CLIENTS:-1 8}
scale=${BENCH_SCALE:-10}
# shellcheck source=../tests/support/postgres.sh
source "$repo/tests/support/postgres.sh"
# shellcheck source=lib.sh
source "$repo/bench/lib.sh"

work=$(mktemp -d /tmp/duet-bench.XXXXXX)
duet_pid=
cleanup() {
    if [ -n "$duet_pid" ]; then kill "$duet_pid" 2>/dev/null || true; wait "$duet_pid" 2>/dev/null || true; fi
    pg_stop
    rm -rf "$work"
}
trap cleanup EXIT

log() { echo "bench: $*" >&2; }

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

# CPU time (clock ticks) a server has used: its process and children,
# live or reaped (PostgreSQL's backends are the postmaster's children).
server_ticks() {
    local total=0 p
    for p in "$1" $(pgrep -P "$1"); do
        # After the command name: utime stime cutime cstime are fields 12-15.
        total=$(( total + $(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null |
            awk '{s = $12 + $13 + $14 + $15} END {print s + 0}') ))
    done
    echo "$total"
}
ticks_per_second=$(getconf CLK_TCK)

# Prints "transactions seconds ticks" of one pgbench run of slice_seconds
# against the server with process id $4 (seconds without connection
# time, ticks of the server's CPU; "n/a" when unknown).
run_pgbench() {
    local url=$1 script=$2 clients=$3 pid=$4 threads out before after
    threads=$(( clients < $(nproc) ? clients : $(nproc) ))
    local cmd=(pgbench -n -M prepared)
    # shellcheck disable=SC2207
    cmd+=($(workload_args "$script") -c "$clients" -j "$threads" -T "$slice_seconds" "$url")
    before=$(server_ticks "$pid")
    out=$("${cmd[@]}" 2>&1) || {
        log "pgbench failed:"; echo "$out" >&2; echo "n/a n/a n/a"; return
    }
    after=$(server_ticks "$pid")
    local failed txns secs
    failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
    [ "${failed:-0}" = 0 ] || log "$script with $clients clients: $failed failed transactions"
    read -r txns secs < <(echo "$out" | pgbench_totals)
    if [ "$txns" = n/a ]; then echo "n/a n/a n/a"; else echo "$txns $secs $(( after - before ))"; fi
}

# Adds "transactions seconds ticks" to a running total of the same form.
add_run() {
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ")
        for (i = 1; i <= 3; i++) {
            if (x[i] == "n/a" || y[i] == "n/a") s[i] = "n/a"; else s[i] = x[i] + y[i]
        }
        printf "%s %s %s\n", s[1], s[2], s[3] }'
}

# Prints "tps server-CPU-µs-per-transaction" of a total.
total_rates() {
    awk -v a="$1" -v hz="$ticks_per_second" 'BEGIN { split(a, x, " ")
        if (x[1] != "n/a" && x[2] + 0 > 0) printf "%.0f ", x[1] / x[2]; else printf "n/a "
        if (x[3] != "n/a" && x[1] + 0 > 0) printf "%.1f\n", x[3] / hz * 1e6 / x[1]; else print "n/a" }'
}

# The median of its arguments ("n/a" ones left out), printed with the
# printf format $1.
median() {
    local format=$1
    shift
    printf '%s\n' "$@" | grep -v '^n/a$' | sort -g | awk -v f="$format" '{v[NR] = $1} END {
        if (NR == 0) print "n/a"
        else printf f "\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

declare -A url pid
if [[ " $servers " == *" postgres "* ]]; then
    pg_start
    trap cleanup EXIT # pg_start installs its own EXIT trap; ours stops it too
    url[postgres]=$PG_URL
    pid[postgres]=$(head -1 "$PG_DIR/data/postmaster.pid")
    load_kv "${url[postgres]}" "$rows"
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
    pid[duet]=$duet_pid
    url[duet]="postgresql://root@127.0.0.1:$port/defaultdb?sslmode=disable"
    wait_ready "${url[duet]}" "$duet_pid" || { tail -50 "$work/duet.log" >&2; exit 1; }
    load_kv "${url[duet]}" "$rows"
    load_pgbench "${url[duet]}"
fi

# workload:client counts
clients_csv=$(echo "$clients_list" | tr ' ' ,)
workloads=${BENCH_WORKLOADS:-"point_select.sql:$clients_csv update.sql:$clients_csv tpcb-like:8 simple-update:8 select-only:8"}
declare -A tps cpu
for round in $(seq "$rounds"); do
    order=$servers
    (( round % 2 == 0 )) && order=$(echo "$servers" | tr ' ' '\n' | tac | tr '\n' ' ')
    for workload in $workloads; do
        script=${workload%%:*}
        for clients in $(echo "${workload#*:}" | tr , ' '); do
            declare -A total=()
            for server in $order; do total[$server]="0 0 0"; done
            log "round $round/$rounds: $script, $clients clients, $slices slices of ${slice_seconds}s per server"
            slice_order=$order
            for _ in $(seq "$slices"); do
                for server in $slice_order; do
                    total[$server]=$(add_run "${total[$server]}" "$(run_pgbench "${url[$server]}" "$script" "$clients" "${pid[$server]}")")
                done
                slice_order=$(echo "$slice_order" | tr ' ' '\n' | tac | tr '\n' ' ')
            done
            for server in $order; do
                read -r t c < <(total_rates "${total[$server]}")
                log "round $round/$rounds, $server: $script, $clients clients: $t tps"
                tps[$server,$script,$clients]+=" $t"
                cpu[$server,$script,$clients]+=" $c"
            done
        done
    done
done

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", b / a; else print "n/a" }'
}

# "median (min-max)" of the rounds' duet / PostgreSQL ratios.
round_ratios() {
    local pg=($1) du=($2) r=() i
    for i in "${!pg[@]}"; do r+=("$(ratio "${pg[$i]}" "${du[$i]:-n/a}")"); done
    local sorted
    sorted=$(printf '%s\n' "${r[@]}" | grep -v '^n/a$' | sort -g)
    [ -n "$sorted" ] || { echo "n/a"; return; }
    echo "$(median %.2f "${r[@]}") ($(echo "$sorted" | head -1)-$(echo "$sorted" | tail -1))"
}

table=$(
    echo "| workload | clients | PostgreSQL tps | duet tps | duet / PostgreSQL, median (range) | PostgreSQL CPU µs/txn | duet CPU µs/txn | PostgreSQL / duet CPU |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for workload in $workloads; do
        script=${workload%%:*}
        case $script in
            point_select.sql) name="point select" ;;
            update.sql) name="single-row update" ;;
            *) name="pgbench $script (scale $scale)" ;;
        esac
        for clients in $(echo "${workload#*:}" | tr , ' '); do
            pg_runs=${tps[postgres,$script,$clients]:-n/a}
            du_runs=${tps[duet,$script,$clients]:-n/a}
            # shellcheck disable=SC2086
            pg=$(median %.0f $pg_runs) du=$(median %.0f $du_runs)
            # shellcheck disable=SC2086
            pgc=$(median %.1f ${cpu[postgres,$script,$clients]:-n/a})
            # shellcheck disable=SC2086
            duc=$(median %.1f ${cpu[duet,$script,$clients]:-n/a})
            echo "| $name | $clients | $pg | $du | $(round_ratios "$pg_runs" "$du_runs") | $pgc | $duc | $(ratio "$duc" "$pgc") |"
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
  $rounds rounds of ${seconds} s per server and workload, each cut into
  $slices pgbench runs of ${slice_seconds} s that alternate between the servers
  (the VM's speed drifts within seconds), a round's tps being its runs'
  transactions over their time; tps excludes connection time. Throughput is the median of the rounds,
  the ratio the median (and range) of the rounds' ratios. CPU: the
  server's CPU time per transaction (user and system, from \`/proc\`: the
  postmaster and its children, or duet's process; pgbench not counted,
  connection setup counted), the median of the rounds; the last column
  is above 1 where duet needs less.
* Machine: $(nproc) CPUs ($cpu), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM.
* Command: \`BENCH_SECONDS=$seconds BENCH_ROUNDS=$rounds BENCH_SLICES=$slices bench/run.sh\` ($(date -u +%Y-%m-%d)).

$table
MD
if [ -n "$kept" ]; then printf '\n%s\n' "$kept" >>"$repo/docs/benchmarks.md"; fi
log "wrote docs/benchmarks.md"
