#!/usr/bin/env bash
# Checks what tests/run.sh needs before it builds anything, and names every missing
# piece with how to get it. Exit 1 when a requirement is missing; valgrind is
# optional (only Linux has it) and its absence is a loud warning, not a failure.
#   PYTHON=python3.11 bash tests/prerequisites.sh
set -uo pipefail
# Only bash itself is assumed here (no sed, cut, dirname): the checks must work on
# a machine that lacks the very tools they look for.
here=${BASH_SOURCE[0]%/*}
[[ $here == "${BASH_SOURCE[0]}" ]] && here=.
cd "$here/.." || exit 1

missing=()
need() { missing+=("$1"); }

rust_needed=1.85
while read -r line; do
    [[ $line =~ ^rust-version\ *=\ *\"([0-9.]+)\" ]] && rust_needed=${BASH_REMATCH[1]}
done < Cargo.toml
version_at_least() { # version_at_least HAVE NEED: dotted numbers
    local IFS=. have need i
    read -r -a have <<< "$1"
    read -r -a need <<< "$2"
    for i in 0 1 2; do
        if (( ${have[i]:-0} != ${need[i]:-0} )); then
            (( ${have[i]:-0} > ${need[i]:-0} ))
            return
        fi
    done
}

if ! command -v cargo > /dev/null 2>&1 || ! command -v rustc > /dev/null 2>&1; then
    need "Rust (cargo and rustc) $rust_needed or newer: install it from https://rustup.rs"
else
    rustc_version=$(rustc --version 2>/dev/null)
    if [[ $rustc_version =~ ^rustc\ ([0-9]+\.[0-9]+\.[0-9]+) ]]; then
        rust_found=${BASH_REMATCH[1]}
        if ! version_at_least "$rust_found" "$rust_needed"; then
            need "Rust $rust_needed or newer (found $rust_found): rustup update stable"
        fi
    else
        need "a working rustc (\`rustc --version\` said: ${rustc_version:-nothing}): reinstall from https://rustup.rs"
    fi
    if ! cargo fmt --version > /dev/null 2>&1; then
        need "rustfmt (cargo fmt): rustup component add rustfmt"
    fi
    if ! cargo clippy --version > /dev/null 2>&1; then
        need "clippy (cargo clippy): rustup component add clippy"
    fi
fi

cc_command=${CC:-cc}
if ! command -v "$cc_command" > /dev/null 2>&1; then
    need "a C compiler ($cc_command): Debian/Ubuntu: apt-get install build-essential; macOS: xcode-select --install"
fi

python=${PYTHON:-python3}
python_found=$(command -v "$python" 2>/dev/null)
if [[ -z $python_found ]]; then
    need "Python 3.11 or newer ($python): https://www.python.org/downloads/ (or set PYTHON=/path/to/python3.11)"
else
    python_version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
    if ! version_at_least "${python_version:-0}" 3.11; then
        need "Python 3.11 or newer ($python is ${python_version:-not a working Python}): install 3.11 (TouchDesigner's) and set PYTHON=/path/to/python3.11"
    elif [[ ! -x target/pyenv/bin/python ]] && ! "$python" -c 'import venv, ensurepip' > /dev/null 2>&1; then
        need "Python's venv module with ensurepip ($python): Debian/Ubuntu: apt-get install python3-venv"
    fi
fi

if (( ${#missing[@]} )); then
    echo "tests/run.sh cannot start; missing:" >&2
    for item in "${missing[@]}"; do
        echo "  - $item" >&2
    done
    exit 1
fi

if ! valgrind --version > /dev/null 2>&1; then
    echo "WARNING: valgrind is not installed: the ABI-misuse test (tests/faults/abi.rs, abi_misuse_under_valgrind)"
    echo "WARNING: will run its C programs natively only, NOT under valgrind. Debian/Ubuntu: apt-get install valgrind"
fi
echo "prerequisites: Rust $rust_found, $cc_command, Python $python_version ($python_found)"
