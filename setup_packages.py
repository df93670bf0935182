"""DataNet for TouchDesigner: one-time setup. No pip.

Run it once, in TouchDesigner's textport:

    exec(open('C:/path/to/datanet-td/setup_packages.py').read())

or with any Python 3.11:

    python3 setup_packages.py [--dest PROJECT_FOLDER] [--no-build]

It finds the native library (building it with `cargo build --release` when it is
missing and cargo is installed), copies it next to the TouchDesigner project under
a versioned file name (Windows locks a loaded DLL, so a new build can never
overwrite the one TD holds), loads it, checks its ABI against DataNet.py, and
prints what to do next.
"""

import hashlib
import os
import shutil
import subprocess
import sys


def repo_folder():
    """The folder holding this script, DataNet.py and (after a build) target/."""
    here = globals().get("__file__")
    if here:
        return os.path.dirname(os.path.abspath(here))
    return os.getcwd()


def find_or_build(datanet, repo, build=True):
    stem, suffix = datanet.library_file_parts()
    candidates = [os.path.join(repo, stem + suffix), os.path.join(repo, "target", "release", stem + suffix)]
    for path in candidates:
        if os.path.isfile(path):
            return path
    cargo = shutil.which("cargo")
    if not build or cargo is None or not os.path.isfile(os.path.join(repo, "Cargo.toml")):
        raise SystemExit(
            "DataNet: no library found (looked for %s). Download a release zip for your OS, "
            "or install Rust and run `cargo build --release` in %s." % (", ".join(candidates), repo))
    print("DataNet: building the library with cargo (a few minutes the first time)...")
    subprocess.run([cargo, "build", "--release", "--lib"], cwd=repo, check=True)
    return candidates[1]


def install(datanet, library, dest):
    """Copies the library to dest under a name that changes with its content."""
    stem, suffix = datanet.library_file_parts()
    with open(library, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    target = os.path.join(dest, "%s-%s%s" % (stem, digest, suffix))
    if not os.path.exists(target):
        os.makedirs(dest, exist_ok=True)
        shutil.copy2(library, target)
    else:
        os.utime(target)  # newest copy wins when DataNet.py picks among several
    return target


def load_datanet_module(repo):
    """DataNet.py from TouchDesigner's DataNet DAT when there is one, else from the repo."""
    op = globals().get("op")
    if op is not None and op("DataNet") is not None:
        return op("DataNet").module
    sys.path.insert(0, repo)
    try:
        import DataNet
    finally:
        sys.path.pop(0)
    return DataNet


def main(argv):
    dest, build = None, True
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--dest" and args:
            dest = args.pop(0)
        elif arg == "--no-build":
            build = False
        else:
            raise SystemExit("usage: setup_packages.py [--dest FOLDER] [--no-build]")
    repo = repo_folder()
    datanet = load_datanet_module(repo)
    dest = dest or datanet.td_project_folder() or os.getcwd()
    library = find_or_build(datanet, repo, build)
    installed = install(datanet, library, dest)
    lib = datanet.load_library(installed)
    print("DataNet: library %s (version %s, ABI %d) installed as %s" % (
        library, lib.dn_version().decode(), lib.dn_abi_version(), installed))
    if sys.platform == "darwin":
        print("DataNet: on macOS, if TouchDesigner refuses to load it: xattr -dr com.apple.quarantine '%s'"
              % installed)
    print("DataNet: next, paste DataNet.py into a Text DAT named DataNet and td/execute_dat.py into an "
          "Execute DAT (see README, 'Set up in TouchDesigner').")
    return installed


if __name__ == "__main__":
    main(sys.argv[1:])
elif globals().get("op") is not None:
    # exec'd inside TouchDesigner's textport or a Text DAT.
    main([])
