//! Stamps the binary with the git commit it was built from and its target triple, so that
//! `akamai-siem --version` on a production host says exactly which build is running.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    // Cargo sets TARGET for build scripts: the triple being compiled for (the musl one too).
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=BUILD_TARGET={target}");
    println!("cargo:rustc-env=BUILD_GIT_COMMIT={}", commit());
    println!("cargo:rerun-if-env-changed=BUILD_GIT_COMMIT");
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it points to (a commit).
    // Paths come from git, so a worktree (whose .git is a file) works too.
    for name in ["HEAD", "packed-refs"] {
        if let Some(path) = git_path(name) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(path) = git_path(&branch)
    {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// The commit HEAD names. A source tarball without git is not a failure ("unknown"), and a
/// packager building outside the checkout can say which commit it is (BUILD_GIT_COMMIT).
/// No "-dirty" mark: cargo reruns this script when HEAD moves, not on every edit, so the mark
/// would go stale and lie.
fn commit() -> String {
    if let Ok(given) = std::env::var("BUILD_GIT_COMMIT")
        && !given.trim().is_empty()
    {
        return given.trim().to_string();
    }
    git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
}

fn git_path(name: &str) -> Option<PathBuf> {
    git(&["rev-parse", "--git-path", name]).map(PathBuf::from)
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}
