//! Validation against Microsoft's EWS schema in `<workspace>/../shared/ews-schema/`
//! with xmllint (Debian `libxml2-utils`), as that folder's README describes.
//! A missing schema or xmllint fails the test loudly.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Stdio,
    sync::OnceLock,
};

/// `<workspace root>/../shared/ews-schema`.
pub fn schema_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/ews-schema");
    assert!(
        dir.join("messages.xsd").is_file() && dir.join("harness/validate.sh").is_file(),
        "the EWS schema is missing: expected {} (CI copies shared/ beside the clone)",
        dir.display()
    );
    dir
}

fn xmllint() -> &'static str {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let ok = std::process::Command::new("xmllint")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "xmllint not found: install Debian package libxml2-utils (scripts/prepare-test-env does)");
    });
    "xmllint"
}

/// A prepared copy of the schemas with the driver schema of `harness/validate.sh`
/// (extracted from the script, so the two cannot drift apart), compiled by
/// xmllint per call. Prepared once per test process.
pub fn driver() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let src = schema_dir();
        let dir = std::env::temp_dir().join(format!("continuity-ews-xsd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (from, name) in [
            (src.join("messages.xsd"), "messages.xsd"),
            (src.join("types.xsd"), "types.xsd"),
            (src.join("harness/xml-minimal.xsd"), "xml-minimal.xsd"),
            (src.join("harness/soap11-minimal.xsd"), "soap11-minimal.xsd"),
        ] {
            std::fs::copy(&from, dir.join(name))
                .unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        }
        let script = std::fs::read_to_string(src.join("harness/validate.sh")).unwrap();
        let start = script
            .find("<<'XSD'\n")
            .expect("driver heredoc in validate.sh")
            + 8;
        let end = start
            + script[start..]
                .find("\nXSD\n")
                .expect("end of driver heredoc");
        std::fs::write(dir.join("driver.xsd"), &script[start..end]).unwrap();
        dir
    })
}

/// Validates one document; `Err` holds xmllint's complaint.
pub fn validate(xml: &str) -> Result<(), String> {
    let driver = driver().join("driver.xsd");
    let mut child = std::process::Command::new(xmllint())
        .args(["--noout", "--nonet", "--schema"])
        .arg(&driver)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run xmllint");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(xml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Validates many documents with the project's `harness/validate.sh` itself
/// (one schema compilation); `Err` holds its output.
pub fn validate_with_script(docs: &[(&str, String)]) -> Result<(), String> {
    let dir = tempdir();
    let mut files = Vec::new();
    for (name, xml) in docs {
        let p = dir.join(format!("{name}.xml"));
        std::fs::write(&p, xml).unwrap();
        files.push(p);
    }
    let out = std::process::Command::new("bash")
        .arg(schema_dir().join("harness/validate.sh"))
        .args(&files)
        .output()
        .expect("run validate.sh");
    let _ = xmllint();
    let _ = std::fs::remove_dir_all(&dir);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "continuity-ews-docs-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
