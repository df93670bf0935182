#!/usr/bin/env bash
# Every check and test of the project. `.ci/run` calls exactly this.
# Needs Rust (stable, with rustfmt and clippy), a C compiler and Python 3.11+
# (PYTHON=... picks the interpreter); valgrind is optional. tests/prerequisites.sh
# checks all of it before anything is built. The Python test-only packages
# (tests/py/requirements.txt) go into target/pyenv, from PyPI the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== prerequisites"
bash tests/prerequisites.sh
valgrind_missing=false
valgrind --version > /dev/null 2>&1 || valgrind_missing=true

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo test (unit, gateway, client integration, faults, C ABI, header freshness)"
cargo test
if $valgrind_missing; then
    echo "WARNING: valgrind is not installed: abi_misuse_under_valgrind above ran its C programs natively,"
    echo "WARNING: NOT under valgrind (memory errors in the C ABI went unchecked). apt-get install valgrind"
fi
echo "== cargo build --release (the library and gateway the Python tests load)"
cargo build --release
echo "== Python test environment: target/pyenv"
if [ ! -x target/pyenv/bin/python ]; then
    "${PYTHON:-python3}" -m venv target/pyenv
fi
if ! target/pyenv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/py/requirements.txt; then
    echo "tests/run.sh: installing tests/py/requirements.txt into target/pyenv failed (see pip's message above;" \
        "the first run needs PyPI, later runs work offline)" >&2
    exit 1
fi
echo "== lint .github/workflows/*.yml (GitHub-workflow schema, actionlint-style checks, shellcheck)"
target/pyenv/bin/python tests/lint_workflows.py
echo "== pytest tests/py (DataNet.py in the TD fake, the shim, the CLIs, interop with datanet-sdk)"
target/pyenv/bin/python -m pytest tests/py -q
