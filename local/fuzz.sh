#!/usr/bin/env bash
# The wire decoder's fuzz target (fuzz/fuzz_targets/decode.rs).
#   local/fuzz.sh smoke [SECONDS]  build it with plain cargo and run it briefly
#                                  over the committed seeds (what `make test` does)
#   local/fuzz.sh run [SECONDS]    a real, coverage-guided run with cargo-fuzz
#                                  (installs cargo-fuzz if missing; cargo-fuzz
#                                  needs nightly flags, which RUSTC_BOOTSTRAP
#                                  allows on the stable toolchain)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

mode="${1:-smoke}"
seconds="${2:-10}"
corpus="$(mktemp -d)"
trap 'rm -rf "$corpus"' EXIT
cp seeds/decode/* "$corpus"/

case "$mode" in
smoke)
    cargo build --quiet --release --bin decode
    # A crash makes libFuzzer exit non-zero and keep the input in fuzz/artifacts/.
    mkdir -p artifacts
    target/release/decode -max_total_time="$seconds" -seed=1 -artifact_prefix=artifacts/ "$corpus"
    ;;
run)
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
    RUSTC_BOOTSTRAP=1 cargo fuzz run decode "$corpus" -- -max_total_time="$seconds"
    ;;
*)
    echo "usage: local/fuzz.sh smoke|run [SECONDS]" >&2
    exit 2
    ;;
esac
