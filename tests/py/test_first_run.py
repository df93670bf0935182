"""The first run of a new user (issue 12): the test command's prerequisites, the
release-workflow lint, the demo's arguments, build output and verdict, and a
library path that points at something that is not a library."""

import ctypes
import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest

from cli_checks import assert_one_line_failure, run_cli, tool_dir
from conftest import REPO

import DataNet

DEMO = os.path.join(REPO, "examples", "demo.py")
BASH = shutil.which("bash")


# ------------------------------------------------------------------ 1. prerequisites, before any build


def real(tool):
    path = shutil.which(tool)
    assert path, "%s is needed on this machine to fake the others" % tool
    return path


def python_real():
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def all_tools(**overrides):
    """Every prerequisite, forwarded to the real program, except the overrides
    (None leaves a tool out)."""
    tools = dict(cargo=real("cargo"), rustc=real("rustc"), cc=real("cc"), python3=python_real())
    tools.update(overrides)
    return {name: body for name, body in tools.items() if body is not None}


def prerequisites(tmp_path, script="tests/prerequisites.sh", folder="bin", **tools):
    folder = tool_dir(tmp_path, folder, **tools)
    env = {k: v for k, v in os.environ.items() if k not in ("CC", "PYTHON")}
    env["PATH"] = str(folder)
    return subprocess.run([BASH, os.path.join(REPO, script)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


def test_run_sh_stops_before_any_build_naming_everything_missing(tmp_path):
    # A machine with bash and coreutils only.
    result = prerequisites(tmp_path, script="tests/run.sh", bash=real("bash"), dirname=real("dirname"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "== cargo" not in result.stdout, "nothing may be built when a prerequisite is missing"
    for needed in ("Rust (cargo and rustc) 1.85 or newer: install it from https://rustup.rs",
                   "a C compiler (cc)", "Python 3.11 or newer (python3)"):
        assert needed in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "command not found" not in result.stderr


@pytest.mark.parametrize("fake, says", [
    ({"cargo": 'if [ "$1" = clippy ]; then exit 1; fi\nexec %s "$@"\n' % shutil.which("cargo")},
     "clippy (cargo clippy): rustup component add clippy"),
    ({"cargo": 'if [ "$1" = fmt ]; then exit 1; fi\nexec %s "$@"\n' % shutil.which("cargo")},
     "rustfmt (cargo fmt): rustup component add rustfmt"),
    ({"rustc": 'echo "rustc 1.80.0 (051478957 2024-07-21)"\n'}, "Rust 1.85 or newer (found 1.80.0): rustup update"),
    ({"cc": None}, "a C compiler (cc): Debian/Ubuntu: apt-get install build-essential"),
    ({"python3": 'echo 3.10\n'}, "Python 3.11 or newer (python3 is 3.10)"),
])
def test_each_missing_piece_is_named_with_how_to_get_it(tmp_path, fake, says):
    result = prerequisites(tmp_path, **all_tools(**fake))
    assert result.returncode == 1 and says in result.stderr, result.stdout + result.stderr
    assert result.stderr.count("\n  - ") == 1, "only what is missing: " + result.stderr


def test_valgrind_missing_is_a_loud_warning_not_a_silent_ok(tmp_path):
    result = prerequisites(tmp_path, **all_tools())
    assert result.returncode == 0, result.stderr
    assert "WARNING: valgrind is not installed" in result.stdout
    assert "NOT under valgrind" in result.stdout and "apt-get install valgrind" in result.stdout
    if shutil.which("valgrind"):
        with_valgrind = prerequisites(tmp_path, folder="with", **all_tools(valgrind=real("valgrind")))
        assert with_valgrind.returncode == 0 and "WARNING" not in with_valgrind.stdout


def test_run_sh_needs_no_node_and_ci_runs_only_it():
    with open(os.path.join(REPO, "tests", "run.sh"), encoding="utf-8") as f:
        run_sh = f.read()
    assert not re.search(r"\b(npm|npx|node)\b", run_sh), "Node is not a listed prerequisite"
    with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
        commands = [line for line in f.read().splitlines() if line.strip() and not line.startswith("#")]
    assert commands[-1] == "exec bash tests/run.sh"


def test_numpy_is_in_the_test_environment_so_its_test_runs():
    with open(os.path.join(REPO, "tests", "py", "requirements.txt"), encoding="utf-8") as f:
        assert re.search(r"^numpy==", f.read(), re.M)
    assert importlib.util.find_spec("numpy") is not None, "run tests/run.sh: it installs tests/py/requirements.txt"


# ------------------------------------------------------------------ 1. the release workflow lint, offline

LINT = os.path.join(REPO, "tests", "lint_workflows.py")

BROKEN_WORKFLOW = """\
name: broken
on:
  push:
    tags: ["v*"]
defaults:
  run:
    shell: bash
jobs:
  build:
    runs-on: ubuntu-lates
    steps:
      - uses: actions/checkout
      - uses: actions/setup-python@v5
        with:
          python_version: "3.11"
      - id: version
        run: echo "v=1" >> "$GITHUB_OUTPUT"
      - run: |
          echo ${{ steps.versoin.outputs.v }} ${{ matrix.os }} ${{ secret.TOKEN }}
          if [ -f x ]; then echo yes
  release:
    runs-on: ubuntu-latest
    needs: [buld]
    timeout-minutes: soon
    steps:
      - run: echo ${{ needs.build.outputs.x }}
"""


def test_the_release_workflow_passes_the_lint():
    result = run_cli([LINT])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 workflow file(s), 0 finding(s)" in result.stdout


def test_the_lint_finds_each_kind_of_mistake(tmp_path):
    workflow = tmp_path / "broken.yml"
    workflow.write_text(BROKEN_WORKFLOW)
    result = subprocess.run([sys.executable, LINT, str(workflow)], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9"))
    assert result.returncode == 1
    for finding in (
        "schema: ", "'soon' is not of type 'number'",
        ":10: job build: unknown runner label 'ubuntu-lates'",
        ":12: uses: 'actions/checkout' needs owner/repo@ref",
        ":15: actions/setup-python has no input 'python_version'",
        ":19: steps.versoin: 'versoin' is not the id of an earlier step",
        ":19: matrix.os used in a job with no strategy.matrix",
        ":19: unknown context 'secret'",
        ":20: job build, run: script: shellcheck: error: Couldn't find 'fi'",
        ":23: job release needs 'buld', which is not a job here",
        ":26: needs.build: 'build' is not a job in this job's needs",
    ):
        assert finding in result.stdout, (finding, result.stdout)


# ------------------------------------------------------------------ 2-4. the demo


def demo(*args, env=None, timeout=120, script=DEMO, cwd=None):
    return run_cli([script, *args], env=env, timeout=timeout, cwd=cwd)


def unbuilt_clone(tmp_path):
    """What the demo reads before it starts anything, in a clone with no target/."""
    clone = tmp_path / "clone"
    (clone / "examples").mkdir(parents=True)
    shutil.copy(DEMO, clone / "examples" / "demo.py")
    shutil.copy(os.path.join(REPO, "DataNet.py"), clone / "DataNet.py")
    return clone


@pytest.mark.parametrize("args, phrase", [
    (["--channels", "0"], "argument --channels: 0 is out of range: give 1 to 1000"),
    (["--channels", "three"], "argument --channels: 'three' is not a whole number"),
    (["--rate", "-5"], "argument --rate: -5 is out of range"),
    (["--rate", "2.5"], "argument --rate: '2.5' is not a whole number"),
    (["--seconds", "0"], "argument --seconds: 0 is out of range"),
    (["--seconds", "nan"], "argument --seconds: nan is out of range"),
    (["--seconds", "0.2", "--rate", "1"], "publishes no message"),
    (["--callbacks", "no/such/file.py"], "--callbacks"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_demo_arguments_are_one_line_and_exit_2(args, phrase):
    assert_one_line_failure(demo(*args), 2, phrase, "see --help")


def test_demo_help_describes_every_option_with_its_default():
    result = demo("--help")
    assert result.returncode == 0, result.stderr
    entries = {}
    for entry in re.split(r"\n  (?=-)", result.stdout.split("options:", 1)[1]):
        if entry.strip():
            entries[entry.split()[0].rstrip(",")] = " ".join(entry.split())
    for option, default in (("--seconds", "(default: 5.0)"), ("--rate", "(default: 300)"),
                            ("--channels", "(default: 3)"), ("--no-build", "(default: build first"),
                            ("--callbacks", "(default: no callbacks DAT)")):
        assert default in entries.get(option, ""), (option, default, result.stdout)


def test_no_build_on_an_unbuilt_clone_says_to_build(tmp_path):
    clone = unbuilt_clone(tmp_path)
    line = assert_one_line_failure(demo("--no-build", script=str(clone / "examples" / "demo.py")), 2,
                                   "--no-build", "not built yet", "run without --no-build")
    assert str(clone / "target" / "release") in line


def test_no_cargo_is_one_line_saying_how_to_get_it(tmp_path):
    clone = unbuilt_clone(tmp_path)
    env = dict(os.environ, PATH=str(tool_dir(tmp_path)))
    assert_one_line_failure(demo(script=str(clone / "examples" / "demo.py"), env=env), 1,
                            "cargo not found", "https://rustup.rs")


def test_the_build_says_what_it_compiles_and_shows_cargos_progress(tmp_path):
    """The first run must not be silent for minutes: the demo says what it builds
    and how long a first build takes, and lets cargo's progress through."""
    clone = unbuilt_clone(tmp_path)
    fake_cargo = 'echo "   Compiling datanet v0.1.0 ($PWD)" >&2\nexit 0\n'
    env = dict(os.environ, PATH=str(tool_dir(tmp_path, cargo=fake_cargo)))
    result = demo(script=str(clone / "examples" / "demo.py"), env=env)
    assert "cargo build --release" in result.stdout and "the first time" in result.stdout
    assert re.search(r"about \d+ minutes? on 2 cores and about [\d.]+ GB in target/", result.stdout), result.stdout
    assert "Compiling datanet v0.1.0 (%s)" % clone in result.stderr, "cargo's progress is not hidden"
    # The fake built nothing, so the gateway cannot start: one clear line, no traceback.
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("demo: error: cannot start the gateway")


def test_the_demo_streams_and_passes_and_shows_rtt_once_known():
    result = demo("--no-build", "--seconds", "1.5", "--rate", "60", "--channels", "2", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("demo: ok")
    rtts = re.findall(r"\| rtt ([^|]*) \|", result.stdout)
    assert rtts, result.stdout
    assert all(re.fullmatch(r"-|\d+\.\d ms", rtt) for rtt in rtts), rtts
    assert "None" not in result.stdout


def test_rtt_reads_dash_until_measured():
    spec = importlib.util.spec_from_file_location("demo_module", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.rtt_text(None) == "-"
    assert module.rtt_text(0.4321) == "0.4 ms"


def test_the_demo_fails_when_a_callback_raises(tmp_path):
    callbacks = tmp_path / "callbacks.py"
    callbacks.write_text("def onMessage(channel, data, from_, timestamp):\n"
                         "    raise ValueError('bad reading')\n")
    result = demo("--no-build", "--seconds", "0.5", "--rate", "20", "--channels", "1", "--callbacks",
                  str(callbacks), timeout=180)
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last == "demo: FAILED: 10 callbacks raised (status()['callback_errors'])", result.stdout
    assert "ValueError: bad reading" in result.stdout, "the first traceback is shown"


# ------------------------------------------------------------------ 6. a library path that is not a library


def test_a_file_that_is_not_a_library_is_a_clear_error(tmp_path, monkeypatch):
    stem, suffix = DataNet.library_file_parts()
    bogus = tmp_path / (stem + suffix)
    bogus.write_bytes(b"not a library")
    with pytest.raises(OSError) as loader:
        ctypes.CDLL(str(bogus))
    reason = str(loader.value).replace(str(bogus), "").strip(" :")
    for route in ("lib_path", "DATANET_LIB"):
        if route == "DATANET_LIB":
            monkeypatch.setenv("DATANET_LIB", str(bogus))
        with pytest.raises(DataNet.DataNetError) as error:
            DataNet.load_library(str(bogus) if route == "lib_path" else None)
        assert error.value.code == "library_not_loadable"
        message = error.value.message
        assert str(bogus) in message and reason in message, message
        assert "DATANET_LIB" in message and "cargo build --release" in message and "setup_packages.py" in message


def test_a_library_that_is_not_datanet_is_named_as_such():
    import _ctypes  # a shared library on every OS (.so, .pyd), loadable, without dn_abi_version

    with pytest.raises(DataNet.DataNetError) as error:
        DataNet.load_library(_ctypes.__file__)
    assert error.value.code == "library_not_loadable"
    assert "not a DataNet library" in error.value.message and _ctypes.__file__ in error.value.message
