//! A temporary directory for the whole fuzzing process: targets whose parser reads
//! files write each input there.

use std::path::Path;
use std::sync::OnceLock;

/// The process's scratch directory (removed when the process exits normally).
pub fn dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
        .path()
}
