//! 7. ABI misuse under valgrind.

use super::*;

fn valgrind_installed() -> bool {
    Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Runs `exe args` under memcheck with full leak checking (definite and possible
/// leaks are errors; tests/c/valgrind.supp names the library's one-time globals);
/// returns the output and the error count of its ERROR SUMMARY line.
fn under_valgrind(exe: &Path, args: &[String]) -> (Output, u64) {
    let suppressions = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/c/valgrind.supp");
    let output = Command::new("valgrind")
        .args(["--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite,possible"])
        .arg(format!("--suppressions={}", suppressions.display()))
        .arg(exe)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run valgrind");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors = stderr
        .lines()
        .find_map(|line| line.split("ERROR SUMMARY: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no ERROR SUMMARY from valgrind:\n{stderr}"));
    (output, errors)
}

/// A deliberate heap overflow through the ABI (a capacity that lies), so the
/// test shows valgrind would catch one.
const OVERFLOW_CONTROL: &str = r#"#include <stdlib.h>
#include "datanet.h"
int main(void) {
    char *small = malloc(4);
    size_t len = 0;
    dn_base64_encode((const uint8_t *)"abcdef", 6, small, 64, &len);
    free(small);
    return 0;
}
"#;

/// A leak next to the library (a buffer the program never frees), so the test shows
/// that leak checking is on and the suppressions hide nothing real.
const LEAK_CONTROL: &str = r#"#include <stdlib.h>
#include <string.h>
#include "datanet.h"
char *keep;
int main(void) {
    char *lost = malloc(64);
    size_t len = 0;
    dn_base64_encode((const uint8_t *)"abc", 3, lost, 64, &len);
    keep = lost + 1;
    keep = NULL;
    return (int)strlen(lost) - 4;
}
"#;

#[test]
fn abi_misuse_under_valgrind() {
    let _suite = shared();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let lib_dir = common::native::cdylib_dir();
    let abi_test = common::native::compile_c(&root.join("tests/c/abi_test.c"), "abi_test_valgrind", &lib_dir);
    let abi_threads = common::native::compile_c(&root.join("tests/c/abi_threads.c"), "abi_threads", &lib_dir);
    let gw = Gateway::start();
    let args = [gw.url(), gw.ws_url()];

    // The threaded program natively first: its own checks must pass.
    let native = Command::new(&abi_threads).args(&args).output().unwrap();
    let native_stdout = String::from_utf8_lossy(&native.stdout).to_string();
    assert!(
        native.status.success() && native_stdout.contains(" 0 failed"),
        "abi_threads failed natively:\n{native_stdout}\n{}",
        String::from_utf8_lossy(&native.stderr)
    );
    if !valgrind_installed() {
        println!("SKIP abi_misuse_under_valgrind: valgrind is not installed; ran abi_threads natively only");
        figure("abi_misuse_under_valgrind", format!("valgrind absent: skipped; natively {}", native_stdout.trim()));
        return;
    }
    let control_source = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("overflow_control.c");
    std::fs::write(&control_source, OVERFLOW_CONTROL).unwrap();
    let control = common::native::compile_c(&control_source, "overflow_control", &lib_dir);
    let (control_run, control_errors) = under_valgrind(&control, &[]);
    assert!(control_errors > 0 && control_run.status.code() == Some(99), "valgrind missed a heap overflow");
    let leak_source = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("leak_control.c");
    std::fs::write(&leak_source, LEAK_CONTROL).unwrap();
    let leak = common::native::compile_c(&leak_source, "leak_control", &lib_dir);
    let (leak_run, leak_errors) = under_valgrind(&leak, &[]);
    let leak_stderr = String::from_utf8_lossy(&leak_run.stderr);
    assert!(
        leak_errors > 0 && leak_run.status.code() == Some(99) && leak_stderr.contains("definitely lost: 64 bytes"),
        "valgrind missed a leak:\n{leak_stderr}"
    );

    let started = Instant::now();
    let mut summaries = Vec::new();
    for exe in [&abi_test, &abi_threads] {
        let (run, errors) = under_valgrind(exe, &args);
        let stdout = String::from_utf8_lossy(&run.stdout).to_string();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(errors, 0, "valgrind found errors in {}:\n{stderr}", exe.display());
        assert!(
            run.status.success() && stdout.contains(" 0 failed"),
            "{} under valgrind:\n{stdout}\n{stderr}",
            exe.display()
        );
        summaries.push(stdout.trim().to_string());
    }
    figure(
        "abi_misuse_under_valgrind",
        format!(
            "memcheck with full leak checking, 0 errors: `{}` and `{}` ({:.1} s under valgrind); control heap \
             overflow caught ({control_errors} errors), control leak caught ({leak_errors})",
            summaries[0],
            summaries[1],
            started.elapsed().as_secs_f64()
        ),
    );
}
