#!/usr/bin/env bash
# Fuzzes every decoder for a while: each target in turn, from the seed corpus in fuzz/seeds/.
#   fuzz/run.sh --smoke            30 s per target (CI)
#   fuzz/run.sh --long             600 s per target (the documented long run)
#   fuzz/run.sh SECONDS [TARGET…]  your own time, some targets
# Needs the nightly toolchain (`rustup toolchain install nightly`) and cargo-fuzz (installed here
# from crates.io if missing). A crash leaves its input in fuzz/artifacts/<target>/ and the script
# exits 1: turn that input into a regression test in tests/it/fuzz_regressions.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=30
case "${1:-}" in
  --smoke) secs=30; shift ;;
  --long) secs=600; shift ;;
  [0-9]*) secs=$1; shift ;;
esac
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(eve_body command rule_match config)

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz/run.sh: no nightly toolchain: cargo-fuzz needs one (rustup toolchain install nightly). NOT FUZZED." >&2
  exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo +nightly install cargo-fuzz --locked
fi

# Work on a copy: the fuzzer adds thousands of inputs to its corpus; the repo keeps only seeds.
work=${FUZZ_WORK:-fuzz/corpus}
status=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  cp -n fuzz/seeds/"$t"/* "$work/$t"/ 2>/dev/null || true
  echo "== $t: ${secs}s"
  rc=0
  cargo +nightly fuzz run "$t" "$work/$t" -- \
    -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    >"$work/$t.log" 2>&1 || rc=$?
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|Test unit written|==[0-9]+== ERROR)' "$work/$t.log" || true
  if [ $rc -ne 0 ]; then
    tail -40 "$work/$t.log" >&2
    echo "== $t: CRASH or build failure (exit $rc); inputs in fuzz/artifacts/$t/" >&2
    status=1
  fi
done
exit $status
