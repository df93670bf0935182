"""Packages one built DataNet library into the release zip. Standard library only;
every job of .github/workflows/release.yml calls it, and tests/py/test_package.py
runs it on Linux.

    python .github/package.py LIBRARY [--out DIR] [--version VERSION]

writes DIR/datanet-td-<version>-<os>.zip (DIR defaults to dist), holding one folder
of the same name with the library, DataNet.py, setup_packages.py, README.md,
include/datanet.h, docs/ (the protocol and the reference the header names) and td/: the layout of this repository, so setup_packages.py
and td/build_component.py find their files as they do in a checkout.

The OS comes from the library's file name (datanet.dll, libdatanet.dylib,
libdatanet.so). The version is --version, else the tag name on a tag build
(GITHUB_REF_TYPE=tag, GITHUB_REF_NAME), else Cargo.toml's version. A Windows DLL
that imports the dynamic C runtime (VCRUNTIME140.dll, api-ms-win-crt-*.dll, ...)
is refused: TouchDesigner must not need sibling DLLs, so it is built with a static
CRT.
"""

import argparse
import os
import re
import struct
import sys
import tomllib
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Library file name -> OS name in the zip's name.
LIBRARIES = {"datanet.dll": "windows", "libdatanet.dylib": "macos", "libdatanet.so": "linux"}

#: Files copied as they are, by their path in the repository; td/ is copied whole.
FILES = ["DataNet.py", "setup_packages.py", "README.md", "include/datanet.h", "docs/PROTOCOL.md", "docs/REFERENCE.md"]
FOLDERS = ["td"]

DYNAMIC_CRT = re.compile(r"^(vcruntime\d.*|msvcp\d.*|msvcr\d.*|ucrtbase.*|api-ms-win-crt-.*)\.dll$", re.IGNORECASE)


def release_version(repo=REPO, env=os.environ):
    """The tag name on a tag build, else the version in Cargo.toml."""
    if env.get("GITHUB_REF_TYPE") == "tag" and env.get("GITHUB_REF_NAME"):
        return env["GITHUB_REF_NAME"]
    with open(os.path.join(repo, "Cargo.toml"), "rb") as f:
        return tomllib.load(f)["package"]["version"]


def package_entries(repo, library):
    """(source path, path inside the package folder) of every file, sorted."""
    entries = [(library, os.path.basename(library))]
    entries += [(os.path.join(repo, *name.split("/")), name) for name in FILES]
    for folder in FOLDERS:
        for root, dirs, files in os.walk(os.path.join(repo, folder)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
            for name in files:
                if not name.endswith(".pyc") and not name.startswith("."):
                    source = os.path.join(root, name)
                    entries.append((source, os.path.relpath(source, repo).replace(os.sep, "/")))
    missing = [source for source, _ in entries if not os.path.isfile(source)]
    if missing:
        raise SystemExit("package.py: missing: %s" % ", ".join(missing))
    return sorted(entries, key=lambda entry: entry[1])


def pe_imports(data):
    """Names of the DLLs a PE file (DLL or EXE) imports, from its import and
    delay-load import tables."""
    def u16(at):
        return struct.unpack_from("<H", data, at)[0]

    def u32(at):
        return struct.unpack_from("<I", data, at)[0]

    pe = u32(0x3C)
    if data[:2] != b"MZ" or data[pe:pe + 4] != b"PE\0\0":
        raise ValueError("not a PE file")
    sections_count, optional_size = u16(pe + 6), u16(pe + 20)
    optional = pe + 24
    count_at = optional + {0x10B: 92, 0x20B: 108}[u16(optional)]  # PE32, PE32+
    directories_count, directories = u32(count_at), count_at + 4
    sections = [struct.unpack_from("<8sIIII", data, optional + optional_size + 40 * i)
                for i in range(sections_count)]

    def offset(rva):
        for _, virtual_size, address, raw_size, raw_at in sections:
            if address <= rva < address + max(virtual_size, raw_size):
                return rva - address + raw_at
        raise ValueError("RVA %#x lies in no section" % rva)

    names = []
    # (data directory, descriptor size, offset of the DLL name's RVA in a descriptor)
    for directory, size, name_at in ((1, 20, 12), (13, 32, 4)):
        rva = u32(directories + 8 * directory) if directory < directories_count else 0
        at = offset(rva) if rva else None
        while at is not None and data[at:at + size].strip(b"\0"):
            name = offset(u32(at + name_at))
            names.append(data[name:data.index(b"\0", name)].decode("ascii"))
            at += size
    return names


def dynamic_crt_imports(library):
    with open(library, "rb") as f:
        return [name for name in pe_imports(f.read()) if DYNAMIC_CRT.match(name)]


def build_zip(library, out, version, repo=REPO):
    """Writes the zip; returns its path and the names inside it."""
    os_name = LIBRARIES.get(os.path.basename(library))
    if os_name is None:
        raise SystemExit("package.py: the library must be one of %s, not %s" % (", ".join(LIBRARIES), library))
    if os_name == "windows":
        crt = dynamic_crt_imports(library)
        if crt:
            raise SystemExit("package.py: %s imports the dynamic CRT (%s): build it with "
                             "RUSTFLAGS='-C target-feature=+crt-static'" % (library, ", ".join(crt)))
    version = re.sub(r"[^A-Za-z0-9._+-]", "-", version)
    stem = "datanet-td-%s-%s" % (version, os_name)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, stem + ".zip")
    names = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for source, name in package_entries(repo, library):
            archive.write(source, stem + "/" + name)
            names.append(stem + "/" + name)
    return path, names


def main(argv):
    parser = argparse.ArgumentParser(prog="package.py", description="Packages a built DataNet library.")
    parser.add_argument("library", help="the built datanet.dll, libdatanet.dylib or libdatanet.so")
    parser.add_argument("--out", default="dist", help="folder for the zip (default: dist)")
    parser.add_argument("--version", help="default: the tag name on a tag build, else Cargo.toml's version")
    args = parser.parse_args(argv)
    path, names = build_zip(args.library, args.out, args.version or release_version())
    print("package.py: wrote %s (%d files, %d bytes)" % (path, len(names), os.path.getsize(path)))
    for name in names:
        print("  " + name)
    return path


if __name__ == "__main__":
    main(sys.argv[1:])
