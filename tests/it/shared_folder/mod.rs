//! Finds `../shared` (Akamai's official EdgeGrid vectors, the shared samples), which lives beside
//! the checkout and is not part of it. Rust's test harness cannot report a test as skipped, and it
//! hides a passing test's output, so a test that returned early when the folder was missing would
//! look exactly like one that checked something. Hence: a missing folder fails the test with a
//! message saying what to do, unless the run asks to skip (`TESTS_SKIP_SHARED=1`, a
//! deliberate choice, for a clone without the folder). `TESTS_REQUIRE_SHARED=1` (set by
//! `.ci/run`) overrides a skip inherited from the environment, so CI never skips.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub const REQUIRE_VAR: &str = "TESTS_REQUIRE_SHARED";
pub const SKIP_VAR: &str = "TESTS_SKIP_SHARED";

/// `../shared/<relative>` if it is a directory; `None` only when the run asked to skip it.
/// Panics otherwise, naming the folder and the two variables.
pub fn shared_folder(relative: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(relative);
    locate(&dir, is_set(REQUIRE_VAR), is_set(SKIP_VAR))
        .unwrap_or_else(|problem| panic!("{problem}"))
}

/// The decision behind [`shared_folder`], without the environment, so it can be tested.
pub fn locate(dir: &Path, require: bool, skip: bool) -> Result<Option<PathBuf>, String> {
    if dir.is_dir() {
        return Ok(Some(dir.to_path_buf()));
    }
    if require {
        return Err(format!(
            "{} not found, and {REQUIRE_VAR}=1 makes it mandatory: check out the shared folder \
             beside this repository",
            dir.display()
        ));
    }
    if skip {
        eprintln!(
            "notice: {} not found; skipped ({SKIP_VAR}=1)",
            dir.display()
        );
        return Ok(None);
    }
    Err(format!(
        "{} not found: this test checks against it. Put the shared folder beside this \
         repository, or set {SKIP_VAR}=1 to skip the tests that need it",
        dir.display()
    ))
}

fn is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|value| value == "1")
}
