#!/usr/bin/env bash
# A stand-in for the `duet` binary backed by PostgreSQL 15, so that the
# end-to-end tests themselves can be checked against PostgreSQL:
#
#   DUET_BIN=$PWD/tests/support/pg-as-duet.sh cargo test -p duet-tests --test durability
#
# It understands the subset of duet's CLI the harness uses:
#   start --listen HOST:PORT [--http-listen A] --data-dir D --certs-dir C [--insecure]
#   cert create-ca | create-node HOST... | create-client USER  --certs-dir D   (openssl)
# and runs PostgreSQL in the foreground (exec), so SIGKILL hits the
# postmaster itself. The superuser is `root` in database `defaultdb`, with
# DUET_ROOT_PASSWORD. Secure mode is `hostssl` only; PostgreSQL has no
# cert-or-scram method, so root logs in by certificate only and everyone
# else by SCRAM only: auth.rs's root-SCRAM and bob-certificate steps are
# the expected failures under this stand-in.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

die() { echo "pg-as-duet: $*" >&2; exit 1; }

# PostgreSQL refuses to run as root: drop to the postgres user without
# forking (setpriv execs), so the caller's pid is the postmaster's.
as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
    else
        "$@"
    fi
}

cmd_cert() {
    local sub=$1; shift
    local dir="" args=()
    while [ $# -gt 0 ]; do
        case $1 in
            --certs-dir) dir=$2; shift 2 ;;
            *) args+=("$1"); shift ;;
        esac
    done
    [ -n "$dir" ] || die "cert: --certs-dir is required"
    mkdir -p "$dir"
    case $sub in
        create-ca)
            openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=pg-as-duet CA" \
                -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
                -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
            ;;
        create-node) sign "$dir" node node "$(printf 'DNS:%s,' "${args[@]}" | sed 's/DNS:\([0-9.]*\),/IP:\1,/g; s/,$//')" ;;
        create-client) sign "$dir" "client.${args[0]}" "${args[0]}" "" ;;
        *) die "unknown cert command $sub" ;;
    esac
}

# sign DIR NAME CN SAN: NAME.key + NAME.crt signed by DIR/ca.*
sign() {
    local dir=$1 name=$2 cn=$3 san=$4 ext
    ext=$(mktemp)
    { echo "basicConstraints=CA:FALSE"; [ -n "$san" ] && echo "subjectAltName=$san"; } >"$ext"
    openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$dir/$name.key" \
        -out "$dir/$name.csr" 2>/dev/null
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 3650 -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
    chmod 600 "$dir/$name.key"
    rm -f "$dir/$name.csr" "$ext"
}

cmd_start() {
    local listen="127.0.0.1:26257" data="./duet-data" certs="./certs" insecure=0
    while [ $# -gt 0 ]; do
        case $1 in
            --listen) listen=$2; shift 2 ;;
            --http-listen) shift 2 ;;
            --data-dir) data=$2; shift 2 ;;
            --certs-dir) certs=$2; shift 2 ;;
            --insecure) insecure=1; shift ;;
            *) die "unknown start option $1" ;;
        esac
    done
    local host=${listen%:*} port=${listen##*:}
    mkdir -p "$data"
    data=$(cd "$data" && pwd)
    [ "$(id -u)" = 0 ] && chown postgres: "$data" && chmod 700 "$data"

    if [ ! -f "$data/PG_VERSION" ]; then
        as_postgres "$PG_BIN/initdb" -D "$data" -U root --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
        local pw=${DUET_ROOT_PASSWORD:-}
        as_postgres "$PG_BIN/postgres" --single -D "$data" postgres >/dev/null <<SQL
CREATE DATABASE defaultdb;
ALTER USER root PASSWORD '${pw//\'/\'\'}';
CREATE ROLE admin;
GRANT admin TO root;
SQL
        {
            echo "listen_addresses = '$host'"
            echo "port = $port"
            echo "unix_socket_directories = '$data'"
            echo "fsync = on"
            echo "synchronous_commit = on"
        } >>"$data/postgresql.conf"
        if [ $insecure = 1 ]; then
            printf 'local all all trust\nhost all all all trust\n' >"$data/pg_hba.conf"
        else
            install -o postgres -m 600 "$certs/node.key" "$data/server.key"
            install -o postgres -m 644 "$certs/node.crt" "$data/server.crt"
            install -o postgres -m 644 "$certs/ca.crt" "$data/ca.crt"
            printf "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'ca.crt'\n" \
                >>"$data/postgresql.conf"
            printf 'local all all trust\nhostssl all root all cert\nhostssl all all all scram-sha-256\n' \
                >"$data/pg_hba.conf"
        fi
    fi

    # After a SIGKILL, orphaned backends (whose cwd is the data directory)
    # exit on their own within moments; wait for them so the new postmaster
    # does not find the old shared memory in use.
    for _ in $(seq 100); do
        busy=0
        for p in /proc/[0-9]*; do
            [ "$(readlink "$p/cwd" 2>/dev/null)" = "$data" ] && busy=1 && break
        done
        [ $busy = 0 ] && break
        sleep 0.1
    done
    exec_postgres "$data"
}

exec_postgres() {
    if [ "$(id -u)" = 0 ]; then
        exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$PG_BIN/postgres" -D "$1"
    else
        exec "$PG_BIN/postgres" -D "$1"
    fi
}

case ${1:-} in
    start) shift; cmd_start "$@" ;;
    cert) shift; cmd_cert "$@" ;;
    version) "$PG_BIN/postgres" --version ;;
    *) die "usage: $0 start|cert|version ..." ;;
esac
