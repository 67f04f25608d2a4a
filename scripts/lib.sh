# Shared by scripts/duet and scripts/test (sourced): what a fresh machine
# lacks, installed with the system's package manager when we may, or named
# exactly when we may not; and a cargo build that reports its progress.

say() { echo "duet: $*" >&2; }

# Runs apt-get as root, through sudo when we are not root. Returns 1 (and
# prints the command to run) when neither is possible.
apt_install() {
    local as=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            as=(sudo)
        elif command -v sudo >/dev/null && [ -t 0 ]; then
            as=(sudo)
            say "sudo will ask for your password to install: $*"
        else
            say "missing packages; install them and run this again:"
            say "    sudo apt-get install -y --no-install-recommends $*"
            return 1
        fi
    fi
    say "installing $* (apt-get)"
    "${as[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${as[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@"
}

# Installs the Debian packages named in "$@" (pairs of check:package are
# resolved by the caller); on a system without apt-get, names them and fails.
install_or_explain() {
    [ $# -eq 0 ] && return 0
    if command -v apt-get >/dev/null; then
        apt_install "$@"
    else
        say "this machine has no apt-get; install the equivalents of these"
        say "Debian packages with your package manager, then run this again:"
        say "    $*"
        say "(Fedora: clang clang-devel gcc-c++ make; macOS: xcode-select --install)"
        return 1
    fi
}

have_libclang() {
    [ -n "${LIBCLANG_PATH:-}" ] && return 0
    compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null ||
        compgen -G "/usr/lib/llvm-*/lib/libclang-[0-9]*.so*" >/dev/null ||
        compgen -G "/usr/lib/*-linux-gnu/libclang-[0-9]*.so*" >/dev/null
}

# What building duet needs: Rust, and for RocksDB's C++ and its bindgen
# bindings a C++ compiler, make, clang and libclang.
ensure_build_tools() {
    if ! command -v cargo >/dev/null; then
        say "cargo is not installed: install Rust with rustup (https://rustup.rs),"
        say "    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh"
        say "then open a new shell and run this again"
        return 1
    fi
    local need=()
    command -v clang >/dev/null || need+=(clang)
    have_libclang || need+=(libclang-dev)
    command -v g++ >/dev/null || need+=(g++)
    command -v make >/dev/null || need+=(make)
    install_or_explain "${need[@]}"
}

target_dir() {
    echo "${CARGO_TARGET_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target}"
}

# How far RocksDB's C++ build has got: "N/M" C++ files, or nothing before
# it starts. The cc crate writes one object per source into the build
# script's out directory; the sources are listed in the crate.
rocksdb_progress() {
    local out done total list
    out=$(ls -td "$(target_dir)"/debug/build/librocksdb-sys-*/out 2>/dev/null | head -1)
    [ -n "$out" ] || return 0
    done=$(find "$out" -name '*.o' 2>/dev/null | wc -l)
    list=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/librocksdb-sys-*/rocksdb_lib_sources.txt 2>/dev/null | head -1)
    if [ -n "$list" ]; then
        total=$(tr ' ' '\n' <"$list" | grep -c '\.cc$')
        echo "$done/$total"
    else
        echo "$done"
    fi
}

# Runs cargo with "$@", and while it runs prints every 30 s how long it
# has been going and how far RocksDB's C++ compile is, so a first build
# (RocksDB alone is ~25 minutes on 2 cores) never sits silent.
cargo_with_progress() {
    local started=$SECONDS pid rc progress last=""
    cargo "$@" &
    pid=$!
    trap 'kill $pid 2>/dev/null' INT TERM
    while kill -0 "$pid" 2>/dev/null; do
        for _ in $(seq 30); do
            kill -0 "$pid" 2>/dev/null || break 2
            sleep 1
        done
        progress=$(rocksdb_progress)
        if [ -n "$progress" ] && [ "$progress" != "$last" ]; then
            say "still building ($(( (SECONDS - started) / 60 )) min): RocksDB C++ files compiled: $progress"
            last=$progress
        else
            say "still building ($(( (SECONDS - started) / 60 )) min)"
        fi
    done
    wait "$pid"
    rc=$?
    trap - INT TERM
    return $rc
}

# True before RocksDB's C++ has been compiled into the target directory,
# i.e. when this build will take minutes rather than seconds.
first_build() {
    [ -z "$(find "$(target_dir)"/debug/build -path '*librocksdb-sys-*' -name 'librocksdb.a' 2>/dev/null | head -1)" ]
}
