#!/usr/bin/env bash
# Sets up and runs every test of growcore: the Rust core's unit and property tests, the type
# stubs against the compiled module, and the Python suite (pytest + hypothesis).
# Benchmarks are separate: see benches/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== install growcore with its test dependencies (builds the Rust extension)"
python -m pip install --quiet ".[test,run,lightning,hf]"   # torch: reused when already installed

echo "== Rust: unit and property tests of the core"
cargo test --locked -p growcore-core --release
cargo build --locked -p growcore-core --release --benches --quiet   # benches must keep compiling

echo "== type stubs against the compiled module"
# Run from outside the checkout so the installed package, not the source tree, is checked.
(cd / && python -m mypy.stubtest growcore._core)
python -m mypy --strict python/growcore/__init__.py python/growcore/errors.py python/growcore/analysis.py python/growcore/interop.py python/growcore/data.py python/growcore/log.py python/growcore/cli.py python/growcore/lineage.py python/growcore/torch

echo "== Python tests"
# Exit code 5 (no tests collected) fails this script like any other failure.
# One torch thread: the tests train tiny models, for which two threads on two busy cores were
# measured up to 200x slower (spin-waiting). growcore's own rayon threads are not affected.
OMP_NUM_THREADS=1 python -m pytest tests -q -p no:cacheprovider
