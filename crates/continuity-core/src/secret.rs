//! Secrets in configuration: where a password, a token or a key is found,
//! never the value itself.
//!
//! A [`SecretRef`] is written `{ env = "NAME" }` (an environment variable)
//! or `{ file = "/run/secrets/name" }` (a file's contents, one trailing
//! newline removed), so a configuration file can be shown, versioned and
//! logged without leaking anything. `{ inline = "..." }` holds the value
//! itself, for tests and development only; nothing requires it.
//!
//! The value is read when the adapter's settings are built
//! ([`SecretRef::resolve`], [`SecretRef::resolve_bytes`]); a missing
//! variable, an unreadable file or an empty value is a [`SecretError`]
//! naming the variable or the file. `Debug` and `Display` show where the
//! secret comes from (`env:NAME`, `file:path`, `inline`), never the value,
//! and serialising writes the reference back, refusing an inline value.
//!
//! ```
//! use continuity_core::secret::SecretRef;
//!
//! #[derive(serde::Deserialize)]
//! struct Settings { password: SecretRef, token: SecretRef }
//!
//! let s: Settings = toml::from_str(r#"
//!     password = { env = "RELAY_PASSWORD" }
//!     token = { file = "/run/secrets/twilio" }
//! "#).unwrap();
//! assert_eq!(format!("{:?}", s.password), "env:RELAY_PASSWORD");
//! assert_eq!(s.token.to_string(), "file:/run/secrets/twilio");
//! ```

use std::{ffi::OsString, fmt, io, path::PathBuf};

use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de, ser::SerializeMap};

/// Where a secret is found. See the [module docs](self).
#[derive(Clone)]
#[non_exhaustive]
pub enum SecretRef {
    /// The value of an environment variable: `{ env = "NAME" }`.
    Env(String),
    /// The contents of a file without one trailing newline: `{ file = "path" }`.
    File(PathBuf),
    /// The value itself: `{ inline = "..." }`, for tests and development.
    Inline(SecretString),
}

impl SecretRef {
    /// The environment variable `name`.
    pub fn env(name: impl Into<String>) -> Self {
        SecretRef::Env(name.into())
    }

    /// The file at `path`.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        SecretRef::File(path.into())
    }

    /// The value itself (tests and development).
    pub fn inline(value: impl Into<String>) -> Self {
        SecretRef::Inline(SecretString::from(value.into()))
    }

    /// Reads the secret as text.
    ///
    /// # Errors
    ///
    /// A [`SecretError`] naming the variable or file: not set, unreadable,
    /// empty, or not UTF-8.
    pub fn resolve(&self) -> Result<SecretString, SecretError> {
        self.resolve_with(&|name| std::env::var_os(name))
    }

    /// Reads the secret as bytes (a key), like [`resolve`](Self::resolve).
    pub fn resolve_bytes(&self) -> Result<SecretSlice<u8>, SecretError> {
        self.resolve_bytes_with(&|name| std::env::var_os(name))
    }

    /// [`resolve`](Self::resolve) with environment variables looked up by
    /// `env` instead of the process's environment (tests, or an embedder
    /// keeping its variables elsewhere).
    pub fn resolve_with(
        &self,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<SecretString, SecretError> {
        let bytes = self.resolve_bytes_with(env)?;
        match std::str::from_utf8(bytes.expose_secret()) {
            Ok(text) => Ok(SecretString::from(text)),
            Err(_) => Err(SecretError::NotText {
                from: self.to_string(),
            }),
        }
    }

    /// [`resolve_bytes`](Self::resolve_bytes) with environment variables
    /// looked up by `env` (see [`resolve_with`](Self::resolve_with)).
    pub fn resolve_bytes_with(
        &self,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<SecretSlice<u8>, SecretError> {
        let bytes = match self {
            SecretRef::Env(name) => {
                let value =
                    env(name).ok_or_else(|| SecretError::MissingVariable { name: name.clone() })?;
                let value = value.into_string().map_err(|_| SecretError::NotText {
                    from: self.to_string(),
                })?;
                SecretSlice::from(value.into_bytes())
            }
            SecretRef::File(path) => {
                let mut bytes = std::fs::read(path).map_err(|source| SecretError::Unreadable {
                    path: path.clone(),
                    source,
                })?;
                // Editors and `echo` end a file with a newline that is no
                // part of the password.
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                    if bytes.last() == Some(&b'\r') {
                        bytes.pop();
                    }
                }
                SecretSlice::from(bytes)
            }
            SecretRef::Inline(value) => {
                SecretSlice::from(value.expose_secret().as_bytes().to_vec())
            }
        };
        if bytes.expose_secret().is_empty() {
            return Err(SecretError::Empty {
                from: self.to_string(),
            });
        }
        Ok(bytes)
    }
}

impl PartialEq for SecretRef {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SecretRef::Env(a), SecretRef::Env(b)) => a == b,
            (SecretRef::File(a), SecretRef::File(b)) => a == b,
            (SecretRef::Inline(a), SecretRef::Inline(b)) => a.expose_secret() == b.expose_secret(),
            _ => false,
        }
    }
}

impl Eq for SecretRef {}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
            SecretRef::Inline(_) => f.write_str("inline"),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The written form: exactly one of the three keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    env: Option<String>,
    file: Option<PathBuf>,
    inline: Option<String>,
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let shape = "a secret is written { env = \"NAME\" } or { file = \"path\" } \
                     (or { inline = \"...\" } for tests)";
        let w = Written::deserialize(d)?;
        match (w.env, w.file, w.inline) {
            (Some(name), None, None) if name.is_empty() => {
                Err(de::Error::custom("env: the variable's name is empty"))
            }
            (Some(name), None, None) => Ok(SecretRef::Env(name)),
            (None, Some(path), None) if path.as_os_str().is_empty() => {
                Err(de::Error::custom("file: the path is empty"))
            }
            (None, Some(path), None) => Ok(SecretRef::File(path)),
            (None, None, Some(value)) => Ok(SecretRef::Inline(SecretString::from(value))),
            (None, None, None) => Err(de::Error::custom(format!("nothing given: {shape}"))),
            _ => Err(de::Error::custom(format!("more than one source: {shape}"))),
        }
    }
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self {
            SecretRef::Env(name) => map.serialize_entry("env", name)?,
            SecretRef::File(path) => map.serialize_entry("file", path)?,
            // Writing it out would put the value in a file or a log.
            SecretRef::Inline(_) => {
                return Err(serde::ser::Error::custom(
                    "an inline secret is not written out; use { env = \"NAME\" } or { file = \"path\" }",
                ));
            }
        }
        map.end()
    }
}

/// Why a secret could not be read. The text names the variable or the file
/// and never holds the value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("env:{name}: the environment variable is not set")]
    MissingVariable {
        /// The variable.
        name: String,
    },
    /// The file cannot be read.
    #[error("file:{}: cannot be read: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The value is empty.
    #[error("{from}: the secret is empty")]
    Empty {
        /// Where it came from (`env:NAME`, `file:path`, `inline`).
        from: String,
    },
    /// The value was wanted as text and is not UTF-8.
    #[error("{from}: the secret is not UTF-8 text")]
    NotText {
        /// Where it came from (`env:NAME`, `file:path`, `inline`).
        from: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    fn parse(text: &str) -> Result<SecretRef, String> {
        #[derive(Deserialize)]
        struct S {
            #[allow(dead_code)]
            secret: SecretRef,
        }
        toml::from_str::<S>(text)
            .map(|s| s.secret)
            .map_err(|e| e.to_string())
    }

    fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("continuity-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn reads_the_three_written_forms() {
        assert_eq!(
            parse(r#"secret = { env = "RELAY_PASSWORD" }"#),
            Ok(SecretRef::env("RELAY_PASSWORD"))
        );
        assert_eq!(
            parse(r#"secret = { file = "/run/secrets/x" }"#),
            Ok(SecretRef::file("/run/secrets/x"))
        );
        assert_eq!(
            parse(r#"secret = { inline = "dev" }"#),
            Ok(SecretRef::inline("dev"))
        );
    }

    #[test]
    fn refuses_unknown_keys_none_and_several() {
        let e = parse(r#"secret = { envv = "X" }"#).unwrap_err();
        assert!(e.contains("unknown field `envv`"), "{e}");
        let e = parse(r#"secret = { env = "X", file = "y" }"#).unwrap_err();
        assert!(e.contains("more than one source"), "{e}");
        let e = parse("secret = {}").unwrap_err();
        assert!(e.contains("nothing given"), "{e}");
        let e = parse(r#"secret = { env = "" }"#).unwrap_err();
        assert!(e.contains("name is empty"), "{e}");
        // A bare string is not read as the value: secrets in the file are opt-in.
        assert!(parse(r#"secret = "hunter2""#).is_err());
    }

    #[test]
    fn resolves_from_the_environment() {
        let env = |name: &str| (name == "RELAY_PASSWORD").then(|| OsString::from("s3cret"));
        let value = SecretRef::env("RELAY_PASSWORD").resolve_with(&env).unwrap();
        assert_eq!(value.expose_secret(), "s3cret");
        // The process's own environment: cargo sets this for every test run.
        let name = SecretRef::env("CARGO_PKG_NAME").resolve().unwrap();
        assert_eq!(name.expose_secret(), env!("CARGO_PKG_NAME"));

        let e = SecretRef::env("NOT_SET").resolve_with(&no_env).unwrap_err();
        assert!(matches!(e, SecretError::MissingVariable { .. }));
        assert_eq!(
            e.to_string(),
            "env:NOT_SET: the environment variable is not set"
        );
        let empty = |_: &str| Some(OsString::new());
        let e = SecretRef::env("EMPTY").resolve_with(&empty).unwrap_err();
        assert_eq!(e.to_string(), "env:EMPTY: the secret is empty");
    }

    #[test]
    fn resolves_from_a_file_without_one_trailing_newline() {
        let path = temp_file("password", b"s3cret\n\n");
        let value = SecretRef::file(&path).resolve().unwrap();
        assert_eq!(value.expose_secret(), "s3cret\n", "only one newline goes");
        let path = temp_file("crlf", b"s3cret\r\n");
        assert_eq!(
            SecretRef::file(&path).resolve().unwrap().expose_secret(),
            "s3cret"
        );
        let path = temp_file("key", &[0xff, 0x00, 0x01]);
        let key = SecretRef::file(&path).resolve_bytes().unwrap();
        assert_eq!(key.expose_secret(), &[0xff, 0x00, 0x01]);
        let e = SecretRef::file(&path).resolve().unwrap_err();
        assert!(
            e.to_string().ends_with("the secret is not UTF-8 text"),
            "{e}"
        );

        let missing = path.with_file_name("missing");
        let e = SecretRef::file(&missing).resolve().unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, SecretError::Unreadable { .. }));
        assert!(
            text.starts_with(&format!("file:{}", missing.display())),
            "{text}"
        );
    }

    #[test]
    fn never_shows_the_value() {
        let secret = SecretRef::inline("hunter2");
        for shown in [format!("{secret:?}"), secret.to_string()] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert_eq!(format!("{:?}", SecretRef::env("PW")), "env:PW");
        assert_eq!(format!("{:?}", SecretRef::file("/s/pw")), "file:/s/pw");
        let e = serde_json::to_string(&secret).unwrap_err().to_string();
        assert!(
            e.contains("not written out") && !e.contains("hunter2"),
            "{e}"
        );
        let env = |_: &str| Some(OsString::from("hunter2"));
        let resolved = SecretRef::env("PW").resolve_with(&env).unwrap();
        assert!(!format!("{resolved:?}").contains("hunter2"));
    }

    #[test]
    fn writes_the_reference_back() {
        for secret in [SecretRef::env("PW"), SecretRef::file("/s/pw")] {
            let json = serde_json::to_string(&secret).unwrap();
            assert_eq!(serde_json::from_str::<SecretRef>(&json).unwrap(), secret);
        }
        assert_eq!(
            serde_json::to_string(&SecretRef::env("PW")).unwrap(),
            r#"{"env":"PW"}"#
        );
    }
}
