//! Files that configuration names (certificates, CA bundles), read once
//! when an adapter's settings are built, with an error naming the file.

use std::{
    io,
    path::{Path, PathBuf},
};

/// Reads files named in configuration (certificates, CA bundles): each
/// file's bytes, or the first that cannot be read with its index.
pub fn read_files(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, (usize, FileError)> {
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| read_file(p).map_err(|e| (i, e)))
        .collect()
}

/// Reads one file named in configuration.
pub fn read_file(path: &Path) -> Result<Vec<u8>, FileError> {
    std::fs::read(path).map_err(|source| FileError {
        path: path.to_path_buf(),
        source,
    })
}

/// A file named in configuration that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot be read: {source}", path.display())]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What the system said.
    pub source: io::Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_with_the_index_of_the_one_that_fails() {
        let dir = std::env::temp_dir().join(format!("continuity-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("ca.pem");
        std::fs::write(&good, b"pem").unwrap();
        let bad = good.with_file_name("absent.pem");
        assert_eq!(
            read_files(std::slice::from_ref(&good)).unwrap(),
            vec![b"pem".to_vec()]
        );
        let (i, e) = read_files(&[good, bad.clone()]).unwrap_err();
        assert_eq!(i, 1);
        assert!(e.to_string().starts_with(&bad.display().to_string()));
    }
}
