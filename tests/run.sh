#!/usr/bin/env bash
# Every check and test of the project. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo test (unit, gateway, client integration, C ABI, header freshness)"
cargo test
