"""DataNet for TouchDesigner: one-time setup. No pip.

In TouchDesigner's textport (installs next to the open project, project.folder):

    import runpy; runpy.run_path('C:/path/to/datanet-td/setup_packages.py', init_globals=globals())

or from a terminal, with any Python 3.11 or newer:

    python3 setup_packages.py --dest PROJECT_FOLDER [--create] [--no-build]

It finds the native library (in this folder, as in a release zip, or in
target/release; from a terminal it runs `cargo build --release --lib` when the
library is missing and cargo is installed), copies it next to the TouchDesigner
project under a versioned file name (Windows locks a loaded DLL, so a new build can
never overwrite the one TD holds), loads it, checks its ABI against DataNet.py, and
prints what to do next.
"""

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

TEXTPORT_ROUTE = "import runpy; runpy.run_path(%r, init_globals=globals())"


class SetupError(Exception):
    """A failure the user can fix; its text is the one line they see."""


def repo_folder(script_path):
    """The folder holding this script and DataNet.py (and, after a build, target/)."""
    if not script_path:
        raise SetupError(
            "setup_packages.py does not know where it is (run with exec(), it has no __file__). "
            "In the textport, run it as: " + TEXTPORT_ROUTE % "C:/path/to/datanet-td/setup_packages.py")
    folder = os.path.dirname(os.path.abspath(script_path))
    if not os.path.isfile(os.path.join(folder, "DataNet.py")):
        raise SetupError("%s has no DataNet.py beside it: run the setup_packages.py of an unpacked "
                         "release zip or of a clone of the repository" % script_path)
    return folder


def load_datanet_module(repo, td_op=None):
    """DataNet.py from TouchDesigner's DataNet DAT when there is one, else the repo's
    file, loaded under a private name: `import DataNet` inside TD must keep finding
    the DAT, not this copy."""
    if td_op is not None and td_op("DataNet") is not None:
        return td_op("DataNet").module
    spec = importlib.util.spec_from_file_location("_datanet_setup_shim", os.path.join(repo, "DataNet.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_dest(dest, create):
    dest = os.path.abspath(dest)
    if not os.path.exists(dest):
        if not create:
            raise SetupError("%s does not exist: give the folder of your .toe, or add --create to make it" % dest)
        try:
            os.makedirs(dest)
        except OSError as exc:
            raise SetupError("cannot create %s: %s" % (dest, exc.strerror or exc)) from None
    if not os.path.isdir(dest):
        raise SetupError("%s is a file, not a folder: give the folder of your .toe" % dest)
    try:  # a real write: permission bits say nothing for root, ACLs or network shares
        with tempfile.TemporaryFile(dir=dest):
            pass
    except OSError as exc:
        raise SetupError("%s is not writable (%s): give a folder you can write to" % (dest, exc.strerror or exc)) \
            from None
    return dest


def find_library(datanet, repo):
    stem, suffix = datanet.library_file_parts()
    candidates = [os.path.join(repo, stem + suffix), os.path.join(repo, "target", "release", stem + suffix)]
    return next((path for path in candidates if os.path.isfile(path)), None), candidates


def find_or_build(datanet, repo, build):
    library, candidates = find_library(datanet, repo)
    if library is not None:
        return library
    cargo = shutil.which("cargo")
    if not build or cargo is None or not os.path.isfile(os.path.join(repo, "Cargo.toml")):
        raise SetupError(
            "no library found (looked for %s): download the release zip for your OS, or install Rust "
            "(https://rustup.rs) and run `cargo build --release --lib` in %s" % (" and ".join(candidates), repo))
    print("DataNet: building the library with cargo build --release --lib "
          "(the first build takes a few minutes)...", flush=True)
    result = subprocess.run([cargo, "build", "--release", "--lib"], cwd=repo)
    if result.returncode != 0 or not os.path.isfile(candidates[1]):
        raise SetupError("cargo build --release --lib failed in %s (exit %d): see cargo's messages above"
                         % (repo, result.returncode))
    return candidates[1]


def install(datanet, library, dest):
    """Copies the library to dest under a name that changes with its content."""
    stem, suffix = datanet.library_file_parts()
    try:
        with open(library, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:12]
        target = os.path.join(dest, "%s-%s%s" % (stem, digest, suffix))
        if not os.path.exists(target):
            shutil.copy2(library, target)
        else:
            os.utime(target)  # newest copy wins when DataNet.py picks among several
    except OSError as exc:
        raise SetupError("cannot copy %s into %s: %s" % (library, dest, exc.strerror or exc)) from None
    return target


def setup(datanet, repo, dest, build):
    library = find_or_build(datanet, repo, build)
    installed = install(datanet, library, dest)
    try:
        lib = datanet.load_library(installed)
    except datanet.DataNetError as exc:
        raise SetupError(str(exc)) from None
    print("DataNet: library %s (version %s, ABI %d) installed as %s" % (
        library, lib.dn_version().decode(), lib.dn_abi_version(), installed))
    if sys.platform == "darwin":
        print("DataNet: on macOS, if TouchDesigner refuses to load it: xattr -dr com.apple.quarantine '%s'"
              % installed)
    print("DataNet: next, paste DataNet.py into a Text DAT named DataNet and td/execute_dat.py into an "
          "Execute DAT (see README, 'Set up in TouchDesigner'), or build the DataNet component.")
    return installed


def run_in_touchdesigner(script_path, td_globals):
    """From the textport: installs into project.folder. TD's own argv is never read,
    and nothing is built here (a build would freeze TouchDesigner for minutes)."""
    try:
        repo = repo_folder(script_path)
        folder = getattr(td_globals.get("project"), "folder", None)
        if not folder:
            raise SetupError("project.folder is empty: save the project (.toe) first, then run this again")
        dest = check_dest(folder, create=False)
        return setup(load_datanet_module(repo, td_globals.get("op")), repo, dest, build=False)
    except SetupError as exc:
        print("DataNet setup failed: %s" % exc)
        return None


class OneLineArgumentParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit 2), pointing at --help."""

    def error(self, message):
        self.exit(2, "%s: error: %s (see --help)\n" % (self.prog, message))


def parse_args(argv):
    parser = OneLineArgumentParser(
        prog="setup_packages.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Installs the DataNet native library next to a TouchDesigner project: a copy under\n"
                    "a versioned name (Windows locks a loaded DLL), loaded once to check its ABI\n"
                    "against DataNet.py.",
        epilog="example:\n  python3 setup_packages.py --dest ~/Documents/MyShow\n\n"
               "Inside TouchDesigner, run it from the textport instead (installs into project.folder):\n  "
               + TEXTPORT_ROUTE % "C:/path/to/datanet-td/setup_packages.py")
    parser.add_argument("--dest", required=True, metavar="FOLDER",
                        help="the folder of your .toe (required; it must exist unless --create is given)")
    parser.add_argument("--create", action="store_true", help="create --dest when it does not exist")
    parser.add_argument("--no-build", action="store_true",
                        help="never run cargo: fail when no built library is found (default: build with "
                             "cargo build --release --lib when the library is missing and cargo is installed)")
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    try:
        repo = repo_folder(__file__)
        dest = check_dest(args.dest, args.create)
        setup(load_datanet_module(repo), repo, dest, build=not args.no_build)
    except SetupError as exc:
        print("setup_packages.py: error: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("setup_packages.py: interrupted", file=sys.stderr)
        return 130
    return 0


# TouchDesigner's textport defines op and project; a terminal does not. Checked
# before __name__, which may be '__main__' in TD too (its argv is TD's own).
if callable(globals().get("op")) and globals().get("project") is not None:
    run_in_touchdesigner(globals().get("__file__"), globals())
elif __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
