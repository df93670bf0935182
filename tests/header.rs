//! The committed C header must be what cbindgen generates from `src/ffi` today.
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
