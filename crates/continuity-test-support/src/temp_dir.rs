//! A temporary directory removed on drop.

use std::path::{Path, PathBuf};

use crate::unique_name;

/// A directory under the system's temporary directory, removed (with what
/// it holds) when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `continuity-<label>_<unique suffix>`.
    ///
    /// # Panics
    /// When the directory cannot be created.
    pub fn new(label: &str) -> Self {
        let p = std::env::temp_dir().join(format!("continuity-{}", unique_name(label)));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
