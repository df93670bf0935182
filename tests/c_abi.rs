//! Builds tests/c/abi_test.c against include/datanet.h, links it to the cdylib,
//! and runs it against a local gateway.

mod common;

use std::path::PathBuf;
use std::process::Command;

#[test]
fn c_program_exercises_the_abi() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // The cdylib sits beside the gateway binary in the target profile directory.
    let lib_dir = PathBuf::from(env!("CARGO_BIN_EXE_datanet-gateway")).parent().unwrap().to_path_buf();
    let lib_name = format!("{}datanet{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    // `cargo test` builds the library only as an rlib for the tests: build the
    // cdylib of this profile too (a no-op when it is fresh, so never a stale one).
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build_lib = Command::new(cargo);
    build_lib.args(["build", "--lib", "--manifest-path"]).arg(root.join("Cargo.toml"));
    if lib_dir.ends_with("release") {
        build_lib.arg("--release");
    }
    assert!(build_lib.status().expect("run cargo").success(), "building the cdylib failed");
    assert!(lib_dir.join(&lib_name).exists(), "{lib_name} not built in {}", lib_dir.display());
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("abi_test");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let build = Command::new(&cc)
        .args(["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(root.join("tests/c/abi_test.c"))
        .arg(format!("-I{}", root.join("include").display()))
        .arg(format!("-L{}", lib_dir.display()))
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-ldatanet")
        .output()
        .expect("a C compiler (cc) is needed for the C ABI test");
    assert!(build.status.success(), "C build failed:\n{}", String::from_utf8_lossy(&build.stderr));

    let gateway = common::Gateway::start();
    let run = Command::new(&exe).arg(gateway.url()).arg(gateway.ws_url()).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}");
    assert!(run.status.success(), "C ABI test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}
