# Helpers shared by the bench scripts (sourced, after tests/support/postgres.sh).

# Waits until the server at URL answers a query (60 s at most), giving up
# early if the process PID (optional) has exited.
wait_ready() {
    local url=$1 pid=${2:-}
    for _ in $(seq 600); do
        psql -X -q -d "$url" -c 'SELECT 1' >/dev/null 2>&1 && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "bench: server at $url did not come up" >&2
    return 1
}

# The benchmarks' table: CREATE TABLE kv (id int primary key, v int) with
# ROWS rows from generate_series.
load_kv() {
    local url=$1 rows=$2
    psql -X -q -v ON_ERROR_STOP=1 -d "$url" \
        -c 'CREATE TABLE kv (id int primary key, v int)' \
        -c "INSERT INTO kv SELECT g, 0 FROM generate_series(1, $rows) AS g"
}

# Reads pgbench's report on stdin and prints "transactions seconds"
# (seconds without connection time), or "n/a n/a" when it has neither.
pgbench_totals() {
    awk '/^number of transactions actually processed/ {n = $6}
        /^tps = .*without initial connection time/ {t = $3}
        END {if (n > 0 && t > 0) printf "%d %.6f\n", n, n / t; else print "n/a n/a"}'
}
