#!/usr/bin/env bash
# Fuzzes one target (or all, one after another) under libFuzzer:
#   fuzz/run.sh TARGET|all [SECONDS]     (default 600 s per target)
# Targets: frontend_message sql_statement replication_frame writebatch_apply.
# New coverage lands in $DUET_FUZZ_CORPUS/TARGET (default under
# /var/cache/duet, outside the clone; the committed seeds in
# fuzz/corpus/TARGET are read, not written); a failing input lands in
# fuzz/artifacts/TARGET. After fixing it, copy the input to
# fuzz/regressions/TARGET/ so that CI replays it (tests/regressions.rs).
#
# Build: release with debug assertions, no sanitizer (duet has no unsafe
# code outside the RocksDB calls, which libFuzzer cannot instrument), into
# its own target directory: the first build compiles RocksDB once more.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh TARGET|all [SECONDS]}
seconds=${2:-600}
export CARGO_TARGET_DIR=${DUET_FUZZ_TARGET_DIR:-/var/cache/duet/fuzz-target}
# cargo fuzz passes -Z flags; the stable compiler accepts them this way.
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

targets=("$target")
[ "$target" = all ] && targets=(frontend_message sql_statement replication_frame writebatch_apply)
for t in "${targets[@]}"; do
    work=${DUET_FUZZ_CORPUS:-/var/cache/duet/fuzz-corpus}/$t
    mkdir -p "$work" "corpus/$t"
    # -timeout: an input running 10 s is a hang; -malloc_limit_mb: one
    # allocation of 512 MB from a 64 KB input is an unbounded one.
    cargo fuzz run --fuzz-dir . --features libfuzzer --sanitizer none "$t" "$work" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 \
        -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1
done
