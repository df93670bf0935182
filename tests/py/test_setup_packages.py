"""setup_packages.py: from a terminal (every mistake answered with one clear line)
and from TouchDesigner's textport, by exactly the route the README documents."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from cli_checks import assert_one_line_failure, run_cli, tool_dir
from conftest import REPO, library_path

import DataNet

SETUP = os.path.join(REPO, "setup_packages.py")
TESTS = os.path.join(REPO, "tests")


def installed_libraries(folder):
    stem, suffix = DataNet.library_file_parts()
    return sorted(f for f in os.listdir(folder) if f.startswith(stem + "-") and f.endswith(suffix))


def copy_of_release_folder(tmp_path, library=None):
    """The files setup_packages.py needs, laid out like a release zip, with the
    given library file (or none) beside them."""
    folder = tmp_path / "datanet-td"
    folder.mkdir()
    for name in ("setup_packages.py", "DataNet.py"):
        shutil.copy(os.path.join(REPO, name), folder / name)
    if library is not None:
        stem, suffix = DataNet.library_file_parts()
        (folder / (stem + suffix)).write_bytes(library)
    return folder


# ------------------------------------------------------------------ from a terminal


def test_installs_a_versioned_copy_once_and_loads_it(tmp_path):
    first = run_cli([SETUP, "--dest", str(tmp_path), "--no-build"])
    assert first.returncode == 0, first.stderr
    installed = installed_libraries(tmp_path)
    assert len(installed) == 1 and os.listdir(tmp_path) == installed
    assert "ABI %d" % DataNet.ABI_VERSION in first.stdout and "next, paste DataNet.py" in first.stdout
    again = run_cli([SETUP, "--dest", str(tmp_path), "--no-build"])
    assert again.returncode == 0 and os.listdir(tmp_path) == installed, "same build, same file"


def test_help_describes_every_option_and_the_textport_route():
    result = run_cli([SETUP, "--help"])
    assert result.returncode == 0 and result.stderr == ""
    for option in ("--dest FOLDER", "--create", "--no-build"):
        assert option in result.stdout, option
    assert "runpy.run_path(" in result.stdout and "project.folder" in result.stdout


@pytest.mark.parametrize("args, phrase", [
    ([], "required: --dest"),
    (["--bogus", "--dest", "."], "unrecognized arguments: --bogus"),
    (["--dest"], "--dest: expected one argument"),
])
def test_usage_errors_are_one_line_and_exit_2(args, phrase):
    assert_one_line_failure(run_cli([SETUP, *args]), 2, phrase, "see --help")


def test_a_missing_folder_is_refused_unless_create_is_given(tmp_path):
    typo = tmp_path / "MyShwo"
    assert_one_line_failure(run_cli([SETUP, "--dest", str(typo), "--no-build"]), 1, str(typo), "does not exist",
                            "--create")
    assert not typo.exists(), "a typo must not become a new folder"
    created = run_cli([SETUP, "--dest", str(typo), "--create", "--no-build"])
    assert created.returncode == 0, created.stderr
    assert len(installed_libraries(typo)) == 1


def test_a_file_as_dest_is_refused(tmp_path):
    toe = tmp_path / "show.toe"
    toe.write_text("not a folder")
    assert_one_line_failure(run_cli([SETUP, "--dest", str(toe), "--no-build"]), 1, str(toe), "is a file")


def test_a_folder_that_is_not_writable_is_refused(tmp_path):
    if os.geteuid() == 0:
        locked = "/proc"  # root writes anywhere permission bits say no; nobody creates files in /proc
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
    assert_one_line_failure(run_cli([SETUP, "--dest", str(locked), "--no-build"]), 1, str(locked), "not writable")
    assert installed_libraries(locked) == []


def test_no_library_and_no_build_says_where_it_looked_and_what_to_do(tmp_path):
    folder = copy_of_release_folder(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    line = assert_one_line_failure(run_cli([str(folder / "setup_packages.py"), "--dest", str(project), "--no-build"]),
                                   1, "no library found", str(folder), "release zip", "cargo build --release")
    assert "https://rustup.rs" in line
    assert os.listdir(project) == []


def test_a_failing_cargo_build_is_one_line_after_cargos_own_output(tmp_path):
    folder = copy_of_release_folder(tmp_path)
    (folder / "Cargo.toml").write_text("[package]\n")
    project = tmp_path / "project"
    project.mkdir()
    fake = tool_dir(tmp_path, cargo='echo "error: could not compile datanet" >&2\nexit 101\n')
    env = dict(os.environ, PATH=str(fake))
    result = run_cli([str(folder / "setup_packages.py"), "--dest", str(project)], env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output
    last = result.stderr.strip().splitlines()[-1]
    assert "cargo build --release --lib failed" in last and "exit 101" in last, result.stderr
    assert "could not compile datanet" in result.stderr, "cargo's own messages are shown"


def test_a_file_that_is_not_a_library_is_one_clear_line(tmp_path):
    folder = copy_of_release_folder(tmp_path, library=b"not a library")
    project = tmp_path / "project"
    project.mkdir()
    assert_one_line_failure(run_cli([str(folder / "setup_packages.py"), "--dest", str(project), "--no-build"]), 1,
                            "library_not_loadable", "cannot load")


# ------------------------------------------------------------------ from TouchDesigner's textport

# TD's own command line: what sys.argv holds inside TD. A CLI entry point that
# parsed it would stop with a usage error.
TD_ARGV = [r"C:\Program Files\Derivative\TouchDesigner\bin\TouchDesigner.exe", r"C:\shows\show.toe"]

TEXTPORT = """
import os, sys
sys.path.insert(0, {tests!r})  # the TD fake only: DataNet is not importable from here
from tdfake import TD
from tdfake.namespace import make_globals

sys.argv = {argv!r}
td = TD(project_folder={project!r}, project_name="show")
if {with_dat!r}:
    with open({datanet!r}, encoding="utf-8") as f:
        td.root.create("textDAT", "DataNet").text = f.read()
textport = make_globals(td.root)
textport["__name__"] = "__main__"
exec(compile({line!r}, "<textport>", "exec"), textport)
assert "DataNet" not in sys.modules, "import DataNet in TD must keep finding the DAT"
"""


def readme_textport_line(repo_path):
    """The setup line the README tells TD users to type, with the repo path filled in."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    routes = set(re.findall(r"import runpy; runpy\.run_path\('[^']*/setup_packages\.py', init_globals=globals\(\)\)",
                            readme))
    assert len(routes) == 1, "the README documents one textport route for setup_packages.py: %s" % routes
    route = routes.pop()
    return re.sub(r"'[^']*/setup_packages\.py'", repr(repo_path.replace(os.sep, "/") + "/setup_packages.py"),
                  route)


def run_in_textport(tmp_path, line, with_dat=False, path=None):
    """The line run as TD's textport runs it: from TD's working directory (not the
    repo), with TD's argv, project.folder set, and __name__ == '__main__'."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    td_folder = tmp_path / "TouchDesigner"
    td_folder.mkdir(exist_ok=True)
    script = TEXTPORT.format(tests=TESTS, argv=TD_ARGV, project=str(project), with_dat=with_dat,
                             datanet=os.path.join(REPO, "DataNet.py"), line=line)
    env = dict(os.environ, PATH=path or os.environ["PATH"])
    env.pop("DATANET_LIB", None)
    result = subprocess.run([sys.executable, "-c", script], cwd=td_folder, env=env, capture_output=True, text=True,
                            timeout=120)
    assert os.listdir(td_folder) == [], "nothing lands in TD's working directory"
    return result, project


@pytest.mark.parametrize("with_dat", [False, True], ids=["before the DataNet DAT", "with the DataNet DAT"])
def test_the_readme_textport_route_installs_into_the_project_folder(tmp_path, with_dat):
    assert os.path.isfile(library_path())
    result, project = run_in_textport(tmp_path, readme_textport_line(REPO), with_dat=with_dat)
    assert result.returncode == 0, result.stdout + result.stderr
    installed = installed_libraries(project)
    assert len(installed) == 1, os.listdir(project)
    assert "installed as %s" % os.path.join(str(project), installed[0]) in result.stdout
    assert "ABI %d" % DataNet.ABI_VERSION in result.stdout
    assert "usage" not in result.stdout + result.stderr


def test_the_textport_route_never_builds_and_says_what_to_do(tmp_path):
    folder = copy_of_release_folder(tmp_path)
    (folder / "Cargo.toml").write_text("[package]\n")
    marker = tmp_path / "cargo-ran"
    fake = tool_dir(tmp_path, cargo="touch %s\n" % marker)
    result, project = run_in_textport(tmp_path, readme_textport_line(str(folder)),
                                      path=str(fake) + os.pathsep + os.environ["PATH"])
    assert result.returncode == 0 and "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("DataNet setup failed: no library found"), result.stdout
    assert not marker.exists(), "a cargo build inside TD would freeze it for minutes"
    assert os.listdir(project) == []


def test_exec_from_the_textport_points_to_the_runpy_route(tmp_path):
    """The old README line: exec() gives the script no __file__."""
    line = "exec(open(%r).read())" % SETUP
    result, project = run_in_textport(tmp_path, line)
    assert result.returncode == 0 and "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "runpy.run_path(" in lines[0] and "no __file__" in lines[0], result.stdout
    assert os.listdir(project) == []
