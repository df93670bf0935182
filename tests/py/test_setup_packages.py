"""setup_packages.py finds the built library, installs a versioned copy and checks it."""

import os
import subprocess
import sys

from conftest import REPO

import DataNet


def run_setup(dest):
    return subprocess.run([sys.executable, os.path.join(REPO, "setup_packages.py"), "--dest", str(dest), "--no-build"],
                          capture_output=True, text=True, timeout=60)


def test_installs_a_versioned_copy_once_and_loads_it(tmp_path):
    first = run_setup(tmp_path)
    assert first.returncode == 0, first.stderr
    installed = os.listdir(tmp_path)
    assert len(installed) == 1 and installed[0].startswith(("libdatanet-", "datanet-"))
    assert "ABI %d" % DataNet.ABI_VERSION in first.stdout and "next, paste DataNet.py" in first.stdout
    again = run_setup(tmp_path)
    assert again.returncode == 0 and os.listdir(tmp_path) == installed, "same build, same file"


def test_bad_arguments_say_how_to_use_it(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(REPO, "setup_packages.py"), "--bogus"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "usage" in result.stderr
