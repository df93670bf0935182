//! The committed C header must be what cbindgen generates from `src/ffi` today,
//! and must compile cleanly as C89, C99, C11 and C++11 with -pedantic -Werror.
//! `DATANET_BLESS=1 cargo test --test header` rewrites it.

use std::path::PathBuf;

#[test]
fn committed_header_is_current() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&root)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("header is UTF-8");
    // cbindgen closes its C++ guards with `//` comments, which C89 does not have.
    let generated = generated
        .replace("#endif // __cplusplus", "#endif /* __cplusplus */")
        .replace("#endif  // __cplusplus", "#endif /* __cplusplus */");
    for line in generated.lines().filter(|l| l.starts_with("#define ")) {
        let name = line.split_whitespace().nth(1).unwrap_or("");
        assert!(name.starts_with("DN_") || name == "DATANET_H", "non-ABI constant leaked into the header: {line}");
    }
    let path = root.join("include/datanet.h");
    if std::env::var_os("DATANET_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/datanet.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/datanet.h is stale: run `DATANET_BLESS=1 cargo test --test header` and commit it"
    );
}

/// An integrator may build with any of these; the header must not be the reason a
/// pedantic build fails.
#[test]
fn header_compiles_as_c89_c99_c11_and_cpp11() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let source = "#include \"datanet.h\"\nint main(void) {\n    DnPollInfo poll; DnRowsInfo rows; DnValuesInfo values; DnArtDmx art;\n    (void)poll; (void)rows; (void)values; (void)art;\n    return (int)dn_abi_version() - (int)DN_ABI_VERSION;\n}\n";
    let mut failures = Vec::new();
    for (compiler, standard, extension) in
        [("cc", "c89", "c"), ("cc", "c99", "c"), ("cc", "c11", "c"), ("c++", "c++11", "cpp")]
    {
        let file = dir.join(format!("header_{standard}.{extension}").replace('+', "p"));
        std::fs::write(&file, source).unwrap();
        let output = std::process::Command::new(compiler)
            .args([format!("-std={standard}").as_str(), "-Wall", "-Wextra", "-pedantic", "-Werror", "-c", "-o"])
            .arg(file.with_extension("o"))
            .arg(&file)
            .arg(format!("-I{}", root.join("include").display()))
            .output()
            .unwrap_or_else(|e| panic!("{compiler} is needed for the header test: {e}"));
        if !output.status.success() {
            failures.push(format!("{compiler} -std={standard}:\n{}", String::from_utf8_lossy(&output.stderr)));
        }
    }
    assert!(failures.is_empty(), "the header does not compile cleanly:\n{}", failures.join("\n"));
}
