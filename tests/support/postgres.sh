# Sourceable helpers: a throwaway PostgreSQL 15 on 127.0.0.1, for checking
# the test corpus against the real thing (tests/sql/run-against-postgres.sh)
# and for the benchmark's baseline (bench/run.sh).
#
#   source tests/support/postgres.sh
#   pg_start            # sets PG_DIR, PG_PORT, PG_URL; stops on exit
#   psql "$PG_URL" -c 'SELECT 1'
#
# Settings are PostgreSQL's defaults (fsync=on, synchronous_commit=on), C.UTF-8
# collation, UTC, trust authentication on loopback only.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

# Runs a command as the postgres user when we are root (PostgreSQL refuses
# to run as root).
_pg_as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# Prints a TCP port on 127.0.0.1 that nothing listens on.
pg_free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

pg_start() {
    [ -x "$PG_BIN/postgres" ] || {
        echo "PostgreSQL 15 not found in $PG_BIN (apt-get install postgresql-15)" >&2
        return 1
    }
    PG_DIR=$(mktemp -d /tmp/duet-pg.XXXXXX)
    PG_PORT=$(pg_free_port)
    [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
    trap pg_stop EXIT
    _pg_as_owner "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 || {
        cat "$PG_DIR/initdb.log" >&2
        return 1
    }
    _pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_DIR -c fsync=on -c synchronous_commit=on -c timezone=UTC" \
        start >/dev/null || {
        cat "$PG_DIR/postgres.log" >&2
        return 1
    }
    PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
    export PG_DIR PG_PORT PG_URL
    echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT ($PG_DIR)" >&2
}

pg_stop() {
    if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR" ]; then
        _pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
    fi
    PG_DIR=
}
