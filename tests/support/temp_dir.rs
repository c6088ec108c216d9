//! A temporary folder for one test, removed on drop unless the test failed.

use std::path::PathBuf;

use uuid::Uuid;

/// A temporary folder removed on drop (kept, and named on stderr, when the test panicked).
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh, empty folder under the system's temporary folder, named after the test target.
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "breakerbox-{}-{}",
            env!("CARGO_CRATE_NAME"),
            Uuid::now_v7()
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary folder");
        TempDir(dir)
    }

    /// `sqlite://` URL of `file` in this folder.
    pub fn sqlite_url(&self, file: &str) -> String {
        format!("sqlite://{}", self.0.join(file).display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A failed test's files (database, logs) are what explains the failure.
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
