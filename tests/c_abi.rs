//! Builds tests/c/abi_test.c against include/datanet.h, links it to the cdylib,
//! and runs it against a local gateway.

mod common;

use std::path::PathBuf;
use std::process::Command;

#[test]
fn c_program_exercises_the_abi() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let lib_dir = common::native::cdylib_dir();
    let exe = common::native::compile_c(&root.join("tests/c/abi_test.c"), "abi_test", &lib_dir);
    let gateway = common::Gateway::start();
    let run = Command::new(&exe).arg(gateway.url()).arg(gateway.ws_url()).output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}");
    assert!(run.status.success(), "C ABI test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}
