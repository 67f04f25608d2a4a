#!/usr/bin/env bash
# Replication benchmark: a duet primary + secondary against PostgreSQL 15
# streaming replication (primary + standby from pg_basebackup), on this
# machine, over loopback, fsync on everywhere, measured in the same run.
#
#   bench/replication.sh                       # 10 s per server per throughput row
#   BENCH_SECONDS=30 BENCH_BIG_ROWS=1000000 bench/replication.sh
#
# Both pairs run side by side. Rows (appended to docs/benchmarks.md after
# the "replication" marker):
#   * initial copy of a ~BENCH_BIG_ROWS-row table: duet SERVICE CREATE vs
#     pg_basebackup, MB/s of the copied data directory
#   * commit throughput with the secondary attached (pgbench single-row
#     UPDATE, 8 clients, -M prepared), async and synchronous_commit=on;
#     each server's BENCH_SECONDS cut into BENCH_SLICES (5) pgbench runs
#     that alternate between the two pairs
#   * commit-to-visible lag on the secondary, p50/p99, at a moderate load
#     (pgbench -R BENCH_RATE) in async mode (bench/probe, `repl-probe lag`)
#   * catch-up: the secondary cut off from its primary while BENCH_CATCHUP
#     commits run, then reconnected; commits per second until its replay
#     LSN reaches the primary's
#   * promote-to-first-write after SIGKILL of the primary
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bench=$repo/bench
seconds=${BENCH_SECONDS:-10}
rows=${BENCH_ROWS:-100000}
big_rows=${BENCH_BIG_ROWS:-500000}
rate=${BENCH_RATE:-1000}
catchup=${BENCH_CATCHUP:-300000}
slices=${BENCH_SLICES:-5}
slice_seconds=$(( seconds / slices > 0 ? seconds / slices : 1 ))
# shellcheck source=../tests/support/postgres.sh
source "$repo/tests/support/postgres.sh"
# shellcheck source=lib.sh
source "$repo/bench/lib.sh"

work=$(mktemp -d /tmp/duet-replbench.XXXXXX)
pids=()
standby_dir=
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if [ -n "$standby_dir" ]; then
        _pg_as_owner "$PG_BIN/pg_ctl" -D "$standby_dir" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    pg_stop
    rm -rf "$work"
}
trap cleanup EXIT
log() { echo "bench: $*" >&2; }
now_ms() { date +%s%3N; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

# Prints "transactions seconds" of one pgbench run of slice_seconds
# (seconds without connection time; "n/a n/a" when it failed).
run_slice() {
    local url=$1 clients=$2
    pgbench -n -M prepared -f "$bench/update.sql" -c "$clients" -j "$(( clients < $(nproc) ? clients : $(nproc) ))" \
        -T "$slice_seconds" "$url" 2>&1 | pgbench_totals
}

# Prints the tps of PostgreSQL and of duet over BENCH_SLICES pgbench runs
# each that alternate between them (P D D P P ...): a small VM's speed
# drifts by tens of percent within seconds, and both meet the drift alike.
sliced_tps() {
    local clients=$1 order="pg du" side n s
    declare -A url=([pg]=$2 [du]=$3) txns=([pg]=0 [du]=0) secs=([pg]=0 [du]=0)
    for _ in $(seq "$slices"); do
        for side in $order; do
            read -r n s < <(run_slice "${url[$side]}" "$clients")
            [ "$n" = n/a ] && continue
            txns[$side]=$(( ${txns[$side]} + n ))
            secs[$side]=$(awk -v a="${secs[$side]}" -v b="$s" 'BEGIN {print a + b}')
        done
        order=$(echo "$order" | awk '{print $2, $1}')
    done
    awk -v a="${txns[pg]}" -v b="${secs[pg]}" -v c="${txns[du]}" -v d="${secs[du]}" \
        'BEGIN {printf "%.0f %.0f\n", (b > 0 ? a / b : 0), (d > 0 ? c / d : 0)}'
}

load() {
    local url=$1
    load_kv "$url" "$rows"
    q "$url" "CREATE TABLE big (id int primary key, pad text)"
    local step=100000 from=1
    while [ "$from" -le "$big_rows" ]; do
        q "$url" "INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series($from, $(( from + step - 1 < big_rows ? from + step - 1 : big_rows ))) AS g"
        from=$(( from + step ))
    done
}

log "building duet and the probe (release)"
(cd "$repo" && cargo build --release -p duet -p duet-bench-probe >&2)
target=${CARGO_TARGET_DIR:-$repo/target}/release
duet=$target/duet
probe=$target/repl-probe

declare -A r

# --- PostgreSQL 15: primary + streaming standby -----------------------------
pg_start
trap cleanup EXIT # pg_start installs its own EXIT trap; ours stops it too
purl=$PG_URL
load "$purl"
q "$purl" "CHECKPOINT"
standby_dir=$PG_DIR/standby
sport=$(pg_free_port)
start=$(now_ms)
# With a physical slot (-C -S), as duet's secondary has: the primary keeps
# the WAL a disconnected standby still needs.
_pg_as_owner "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U postgres -D "$standby_dir" -X stream -c fast -R -C -S bench_standby
r[pg_copy_ms]=$(( $(now_ms) - start ))
r[pg_copy_mb]=$(du -sm "$standby_dir" | cut -f1)
# The catch-up's replay applies WAL written long before (while the
# standby was cut off): with the default max_standby_streaming_delay (30 s)
# it cancels the probe's queries on the standby instead of waiting the
# milliseconds they take. wal_retrieve_retry_interval: once reconnected,
# the standby restarts its WAL receiver within 1 ms (default 5 s), as
# duet's SERVICE START connects at once.
_pg_as_owner "$PG_BIN/pg_ctl" -D "$standby_dir" -l "$PG_DIR/standby.log" -w -t 60 \
    -o "-c port=$sport -c unix_socket_directories=$PG_DIR -c hot_standby=on -c max_standby_streaming_delay=-1 -c wal_retrieve_retry_interval=1ms" start >/dev/null
surl="postgresql://postgres@127.0.0.1:$sport/postgres?sslmode=disable"
wait_ready "$surl"
pg_conninfo=$(q "$surl" "SHOW primary_conninfo")

# --- duet: primary + secondary ---------------------------------------------
start_duet() {
    local name=$1 port=$2 http=$3
    "$duet" start --insecure --listen "127.0.0.1:$port" --http-listen "127.0.0.1:$http" \
        --data-dir "$work/$name" --certs-dir "$work/certs" >"$work/$name.log" 2>&1 &
    pids+=($!)
    wait_ready "postgresql://root@127.0.0.1:$port/defaultdb?sslmode=disable"
}
p1=$(pg_free_port); h1=$(pg_free_port); p2=$(pg_free_port); h2=$(pg_free_port)
start_duet n1 "$p1" "$h1"
start_duet n2 "$p2" "$h2"
primary_pid=${pids[0]}
d1="postgresql://root@127.0.0.1:$p1/defaultdb?sslmode=disable"
d2="postgresql://root@127.0.0.1:$p2/defaultdb?sslmode=disable"
load "$d1"
q "$d1" "REPLICATE SET ROLE PRIMARY"
q "$d2" "REPLICATE SET PRIMARY $d1"
start=$(now_ms)
q "$d2" "REPLICATE SET SERVICE CREATE" >/dev/null
r[duet_copy_ms]=$(( $(now_ms) - start ))
r[duet_copy_mb]=$(du -sm "$work/n2/$(cat "$work/n2/ACTIVE_DB")" | cut -f1)
q "$d2" "REPLICATE SET SERVICE START"

# --- both pairs running: the measures -------------------------------------
log "async throughput, alternating"
read -r r[pg_async] r[duet_async] < <(sliced_tps 8 "$purl" "$d1")
log "synchronous_commit=on throughput, alternating"
q "$purl" "ALTER SYSTEM SET synchronous_standby_names = '*'"
q "$purl" "SELECT pg_reload_conf()"
read -r r[pg_sync] r[duet_sync] < <(PGOPTIONS='-c synchronous_commit=on' sliced_tps 8 "$purl" "$d1")
q "$purl" "ALTER SYSTEM RESET synchronous_standby_names"
q "$purl" "SELECT pg_reload_conf()"

# Lag and catch-up are taken in turns too (P D D P), half the time or
# half the commits each turn, and each side's turns are combined.
lag_window=$(( seconds / 2 > 0 ? seconds / 2 : 1 ))
# Each side's primary and secondary, how its secondary is cut off from
# its primary and reconnected (the primary keeps the WAL for its slot),
# and how each reports its LSN.
declare -A primary=([pg]=$purl [duet]=$d1) secondary=([pg]=$surl [duet]=$d2)
disconnect_pg() {
    q "$surl" "ALTER SYSTEM SET primary_conninfo = ''"
    q "$surl" "SELECT pg_reload_conf()" >/dev/null
    local deadline=$(( $(now_ms) + 30000 ))
    until [ "$(q "$surl" "SELECT count(*) FROM pg_stat_wal_receiver")" = 0 ]; do
        [ "$(now_ms)" -lt "$deadline" ] || { log "the standby's WAL receiver did not stop"; exit 1; }
        sleep 0.01
    done
}
reconnect_pg() {
    q "$surl" "ALTER SYSTEM SET primary_conninfo = '${pg_conninfo//\'/\'\'}'"
    q "$surl" "SELECT pg_reload_conf()" >/dev/null
}
disconnect_duet() { q "$d2" "REPLICATE SET SERVICE STOP" >/dev/null; }
reconnect_duet() { q "$d2" "REPLICATE SET SERVICE START" >/dev/null; }
declare -A primary_lsn=([pg]="SELECT pg_current_wal_lsn()::text" [duet]="SELECT pg_current_wal_lsn()")
declare -A replay_lsn=([pg]="SELECT pg_last_wal_replay_lsn()::text" [duet]="SELECT pg_last_wal_replay_lsn()")
# Prints "p50 p99 samples" of side $1's lag over one window under load.
lag_turn() {
    local side=$1 load_pid out
    pgbench -n -M prepared -f "$bench/update.sql" -c 4 -j 2 -R "$rate" -T "$lag_window" "${primary[$side]}" >/dev/null 2>&1 &
    load_pid=$!
    out=$("$probe" lag "${primary[$side]}" "${secondary[$side]}" "$lag_window")
    wait "$load_pid" || true
    echo "$out"
}
# Prints the ms side $1's secondary takes to catch up on catchup/2
# commits made while it was cut off: reconnect, stream, apply.
catchup_turn() {
    local side=$1 start
    "disconnect_$side"
    pgbench -n -M prepared -f "$bench/update.sql" -c 8 -j 2 -t $(( catchup / 16 )) "${primary[$side]}" >/dev/null 2>&1
    start=$(now_ms)
    "reconnect_$side"
    "$probe" wait-lsn "${primary[$side]}" "${secondary[$side]}" "${primary_lsn[$side]}" "${replay_lsn[$side]}" >/dev/null
    echo $(( $(now_ms) - start ))
}
declare -A lag_p50 lag_p99 lag_n catch_ms
for side in pg duet duet pg; do
    log "$side: lag at $rate tps, then catch-up"
    read -r p50 p99 n < <(lag_turn "$side")
    lag_p50[$side]+=" $p50"; lag_p99[$side]+=" $p99"; lag_n[$side]=$(( ${lag_n[$side]:-0} + n ))
    catch_ms[$side]=$(( ${catch_ms[$side]:-0} + $(catchup_turn "$side") ))
done
mean() { echo "$@" | awk '{for (i = 1; i <= NF; i++) s += $i; if (NF) printf "%.2f", s / NF; else print "n/a"}'; }
for side in pg duet; do
    r[${side}_lag]="$(mean ${lag_p50[$side]}) $(mean ${lag_p99[$side]}) ${lag_n[$side]}"
    r[${side}_catchup_ms]=${catch_ms[$side]}
done

log "PostgreSQL: promotion"
kill -9 "$(head -1 "$PG_DIR/data/postmaster.pid")"
r[pg_promote]=$("$probe" promote "$surl" "SELECT pg_promote()")
_pg_as_owner "$PG_BIN/pg_ctl" -D "$standby_dir" -m immediate -w stop >/dev/null 2>&1 || true
standby_dir=
log "duet: promotion"
kill -9 "$primary_pid"
r[duet_promote]=$("$probe" promote "$d2" "REPLICATE SET ROLE PRIMARY")

# --- report -----------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", b / a; else print "n/a" }'; }
mbps() { awk -v mb="$1" -v ms="$2" 'BEGIN { if (ms > 0) printf "%.1f", mb * 1000 / ms; else print "n/a" }'; }
per_s() { awk -v n="$1" -v ms="$2" 'BEGIN { if (ms > 0) printf "%.0f", n * 1000 / ms; else print "n/a" }'; }
read -r pg_p50 pg_p99 pg_n <<<"${r[pg_lag]}"
read -r du_p50 du_p99 du_n <<<"${r[duet_lag]}"
# Copy throughput in table data (rows x 204 bytes), the same for both:
# on disk duet's copy is smaller (LZ4-compressed SST files).
logical_mb=$(( (big_rows * 204 + rows * 8) / 1000000 ))
pg_copy=$(mbps "$logical_mb" "${r[pg_copy_ms]}")
du_copy=$(mbps "$logical_mb" "${r[duet_copy_ms]}")
pg_catch=$(per_s "$catchup" "${r[pg_catchup_ms]}")
du_catch=$(per_s "$catchup" "${r[duet_catchup_ms]}")
table=$(cat <<MD
| measure | PostgreSQL 15 | duet | duet / PostgreSQL |
|---|---:|---:|---:|
| commit tps, secondary attached, async (8 clients) | ${r[pg_async]} | ${r[duet_async]} | $(ratio "${r[pg_async]}" "${r[duet_async]}") |
| commit tps, synchronous_commit=on (8 clients) | ${r[pg_sync]} | ${r[duet_sync]} | $(ratio "${r[pg_sync]}" "${r[duet_sync]}") |
| lag p50, ms, async at $rate tps (lower is better) | $pg_p50 | $du_p50 | $(ratio "$du_p50" "$pg_p50") |
| lag p99, ms, async at $rate tps (lower is better) | $pg_p99 | $du_p99 | $(ratio "$du_p99" "$pg_p99") |
| initial copy, MB of table data per s ($logical_mb MB; on disk ${r[pg_copy_mb]} MB vs ${r[duet_copy_mb]} MB) | $pg_copy | $du_copy | $(ratio "$pg_copy" "$du_copy") |
| catch-up, commits/s applied ($catchup commits) | $pg_catch | $du_catch | $(ratio "$pg_catch" "$du_catch") |
| promote to first write, ms (lower is better) | ${r[pg_promote]} | ${r[duet_promote]} | $(ratio "${r[duet_promote]}" "${r[pg_promote]}") |
MD
)
echo "$table"

marker='<!-- replication benchmark: written by bench/replication.sh -->'
doc=$repo/docs/benchmarks.md
if [ -f "$doc" ] && grep -qF "$marker" "$doc"; then
    sed -i "/$(printf '%s' "$marker" | sed 's/[^^]/[&]/g; s/\^/\\^/g')/,\$d" "$doc"
fi
cat >>"$doc" <<MD
$marker
## Replication

A duet primary with one secondary against PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') with one streaming
standby (pg_basebackup -X stream, hot_standby), both fsync on, over
loopback on this machine, measured in the same run by
\`BENCH_SECONDS=$seconds bench/replication.sh\` ($(date -u +%Y-%m-%d)).
Both pairs run side by side. Throughput: pgbench \`-M prepared\`
single-row UPDATE on a $rows-row table, 8 clients, $slices runs of
${slice_seconds} s per server alternating between them (tps = their
transactions over their time); synchronous rows use \`PGOPTIONS='-c synchronous_commit=on'\`
(PostgreSQL with \`synchronous_standby_names = '*'\`). Lag: a probe commits
a row every 20 ms on the primary while pgbench runs at $rate tps and times
until a query on the secondary sees it (\`bench/probe\`), two turns of
${lag_window} s per server, their percentiles averaged. Initial copy: a
$big_rows-row table of 200-byte rows, size = the copied data directory.
Catch-up: $catchup commits per server, in two turns, made while the
secondary was cut off from its primary (\`SERVICE STOP\`; PostgreSQL:
\`primary_conninfo = ''\` reloaded, until its WAL receiver is gone; both
primaries keep the WAL for a slot), timed from the reconnect
(\`SERVICE START\`; the original \`primary_conninfo\` reloaded) until the
secondary's replay LSN reaches the primary's: reconnect, stream, write
and replay. Promotion: SIGKILL the primary, then
\`REPLICATE SET ROLE PRIMARY\` / \`SELECT pg_promote()\` until an INSERT
commits. For the "lower is better" rows the ratio is PostgreSQL / duet, so
above 1 means duet is better on every row.

$table
MD
log "appended to docs/benchmarks.md"
