""".github/package.py, the release workflow's packaging script, run here on Linux as
each job of .github/workflows/release.yml runs it."""

import importlib.util
import os
import struct
import subprocess
import sys
import tomllib
import zipfile

import pytest

from conftest import REPO, library_path

import DataNet

PACKAGE_PY = os.path.join(REPO, ".github", "package.py")


def package_module():
    spec = importlib.util.spec_from_file_location("release_package", PACKAGE_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def td_files():
    found = []
    for root, dirs, files in os.walk(os.path.join(REPO, "td")):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found += [os.path.relpath(os.path.join(root, f), REPO).replace(os.sep, "/") for f in files
                  if not f.endswith(".pyc")]
    return found


def tiny_pe(dlls):
    """A minimal PE32+ image whose import table names the given DLLs."""
    rva, raw_at = 0x1000, 0x200
    names_at = rva + 20 * (len(dlls) + 1)
    descriptors, names = b"", b""
    for dll in dlls:
        descriptors += struct.pack("<5I", 0, 0, 0, names_at + len(names), 0)
        names += dll.encode() + b"\0"
    section = descriptors + b"\0" * 20 + names
    dos = b"MZ".ljust(0x3C, b"\0") + struct.pack("<I", 0x40)
    coff = struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, 240, 0x2022)
    optional = struct.pack("<H", 0x20B).ljust(108, b"\0") + struct.pack("<I", 16)
    optional += struct.pack("<2I", 0, 0) + struct.pack("<2I", rva, len(section)) + b"\0" * 8 * 14
    header = struct.pack("<8sIIIIIIHHI", b".idata", len(section), rva, len(section), raw_at, 0, 0, 0, 0, 0)
    return (dos + b"PE\0\0" + coff + optional + header).ljust(raw_at, b"\0") + section


def test_the_zip_holds_the_library_and_the_files_td_needs(tmp_path):
    library = library_path()
    if not os.path.isfile(library):
        pytest.skip("no built library at %s (cargo build --release --lib)" % library)
    out = tmp_path / "dist"
    result = subprocess.run([sys.executable, PACKAGE_PY, library, "--out", str(out), "--version", "v1.2.3"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    os_name = {".dll": "windows", ".dylib": "macos", ".so": "linux"}[os.path.splitext(library)[1]]
    stem = "datanet-td-v1.2.3-" + os_name
    assert os.listdir(out) == [stem + ".zip"]
    with zipfile.ZipFile(out / (stem + ".zip")) as archive:
        names = archive.namelist()
        expected = [os.path.basename(library), "DataNet.py", "setup_packages.py", "README.md",
                    "include/datanet.h", "docs/PROTOCOL.md", "docs/REFERENCE.md"] + td_files()
        assert sorted(names) == sorted(stem + "/" + name for name in expected)
        assert {stem + "/td/execute_dat.py", stem + "/td/script_chop_callbacks.py"} <= set(names)
        with open(os.path.join(REPO, "DataNet.py"), "rb") as f:
            assert archive.read(stem + "/DataNet.py") == f.read()
        archive.extractall(tmp_path / "unzipped")
    # The unzipped folder is usable as it is: setup_packages.py finds the library
    # beside it, installs a copy and checks its ABI.
    setup = subprocess.run([sys.executable, str(tmp_path / "unzipped" / stem / "setup_packages.py"),
                            "--dest", str(tmp_path / "project"), "--create", "--no-build"],
                           capture_output=True, text=True, timeout=60)
    assert setup.returncode == 0, setup.stderr
    assert "ABI %d" % DataNet.ABI_VERSION in setup.stdout
    assert len(os.listdir(tmp_path / "project")) == 1


def test_the_version_is_the_tag_name_on_a_tag_else_cargos():
    package = package_module()
    with open(os.path.join(REPO, "Cargo.toml"), "rb") as f:
        cargo_version = tomllib.load(f)["package"]["version"]
    assert package.release_version(env={"GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v2.0.0"}) == "v2.0.0"
    assert package.release_version(env={"GITHUB_REF_TYPE": "branch", "GITHUB_REF_NAME": "main"}) == cargo_version
    assert package.release_version(env={}) == cargo_version


def test_a_windows_dll_on_the_dynamic_crt_is_refused(tmp_path):
    package = package_module()
    static, dynamic = tmp_path / "static", tmp_path / "dynamic"
    static.mkdir()
    dynamic.mkdir()
    (static / "datanet.dll").write_bytes(tiny_pe(["KERNEL32.dll", "WS2_32.dll", "bcryptprimitives.dll"]))
    (dynamic / "datanet.dll").write_bytes(tiny_pe(["KERNEL32.dll", "VCRUNTIME140.dll",
                                                   "api-ms-win-crt-runtime-l1-1-0.dll"]))
    assert package.pe_imports((static / "datanet.dll").read_bytes()) == [
        "KERNEL32.dll", "WS2_32.dll", "bcryptprimitives.dll"]
    path, names = package.build_zip(str(static / "datanet.dll"), str(tmp_path / "out"), "v1")
    assert os.path.basename(path) == "datanet-td-v1-windows.zip" and "datanet-td-v1-windows/datanet.dll" in names
    with pytest.raises(SystemExit, match="VCRUNTIME140.dll, api-ms-win-crt-runtime-l1-1-0.dll"):
        package.build_zip(str(dynamic / "datanet.dll"), str(tmp_path / "out"), "v1")
