//! Building the native pieces the C tests need: the cdylib and C programs linked to it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the cdylib of this profile (`cargo test` alone only makes the rlib; a
/// no-op when it is fresh, so never a stale one) and returns its directory.
pub fn cdylib_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let lib_dir = PathBuf::from(env!("CARGO_BIN_EXE_datanet-gateway")).parent().unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--lib", "--manifest-path"]).arg(root.join("Cargo.toml"));
    if lib_dir.ends_with("release") {
        build.arg("--release");
    }
    assert!(build.status().expect("run cargo").success(), "building the cdylib failed");
    let lib_name = format!("{}datanet{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    assert!(lib_dir.join(&lib_name).exists(), "{lib_name} not built in {}", lib_dir.display());
    lib_dir
}

/// Compiles a C program against include/datanet.h, linked to the cdylib in
/// `lib_dir`, into the test's temporary directory under a name of its own (other
/// test binaries build theirs there at the same time).
pub fn compile_c(source: &Path, name: &str, lib_dir: &Path) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let build = Command::new(&cc)
        .args(["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror", "-pthread", "-g", "-o"])
        .arg(&exe)
        .arg(source)
        .arg(format!("-I{}", root.join("include").display()))
        .arg(format!("-L{}", lib_dir.display()))
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-ldatanet")
        .output()
        .expect("a C compiler (cc) is needed for the C ABI tests");
    assert!(build.status.success(), "C build of {name} failed:\n{}", String::from_utf8_lossy(&build.stderr));
    exe
}
