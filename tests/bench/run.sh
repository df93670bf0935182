#!/usr/bin/env bash
# The benchmark command: builds the release library and gateway, installs the
# bench-only Python packages (websocket-client for baseline A, datanet-sdk for
# baseline B, matplotlib for the charts) into target/pyenv, and runs run.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
if [ ! -x target/pyenv/bin/python ]; then
    python3 -m venv target/pyenv
fi
target/pyenv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/py/requirements.txt \
    websocket-client==1.8.0 matplotlib==3.11.2
exec target/pyenv/bin/python tests/bench/run.py "$@"
