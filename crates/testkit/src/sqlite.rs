//! SQLite files in a temporary directory of their own.

use std::path::{Path, PathBuf};

/// A SQLite file path in a fresh temporary directory, removed (with
/// everything else in it) on drop. The file itself is created by whoever
/// opens it first.
#[derive(Debug)]
pub struct SqliteFile {
    path: PathBuf,
    dir: tempfile::TempDir,
}

impl SqliteFile {
    /// `<fresh temp dir>/<file_name>`, e.g. `SqliteFile::new("registry.db")`.
    pub fn new(file_name: &str) -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        Self {
            path: dir.path().join(file_name),
            dir,
        }
    }

    /// The file's absolute path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary directory holding the file, for companion files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The sqlx URL, creating the file if missing: `sqlite:///abs/path?mode=rwc`.
    pub fn url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.path.display())
    }

    /// The SQLAlchemy URL Feast's SQL registry takes (and Larder accepts):
    /// `sqlite:////abs/path` (three slashes, then the absolute path).
    pub fn feast_url(&self) -> String {
        format!("sqlite:///{}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls() {
        let f = super::SqliteFile::new("r.db");
        let p = f.path().display().to_string();
        assert!(p.starts_with('/') && p.ends_with("/r.db"));
        assert_eq!(f.url(), format!("sqlite://{p}?mode=rwc"));
        assert_eq!(f.feast_url(), format!("sqlite:///{p}"));
        assert_eq!(f.path().parent(), Some(f.dir()));
    }
}
