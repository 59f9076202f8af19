//! The files that ship beside the code (.ci/run, Cargo.toml) do what they claim: the tests that
//! need `../shared` cannot pass without it, CI runs every test, no dev-dependency is dead weight.

mod shared_folder;

use std::path::{Path, PathBuf};

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_file(relative)).unwrap()
}

#[test]
fn every_dev_dependency_is_used() {
    let manifest = read("Cargo.toml");
    let section = manifest
        .split("[dev-dependencies]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    let names: Vec<String> = section
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(name, _)| name.trim().replace('-', "_"))
        })
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .collect();
    assert!(!names.is_empty());
    let mut sources = String::new();
    for dir in ["tests", "src", "examples", "benches"] {
        collect_rust(&repo_file(dir), &mut sources);
    }
    for name in names {
        let used = [
            format!("{name}::"),
            format!("use {name}"),
            format!("{name}!"),
        ]
        .iter()
        .any(|pattern| sources.contains(pattern.as_str()));
        assert!(
            used,
            "dev-dependency {name} is used by no test, example or bench"
        );
    }
}

fn collect_rust(dir: &Path, into: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rust(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

#[test]
fn every_test_finds_the_shared_folder_through_the_one_helper() {
    // Built here so that this file does not match itself.
    let literal = format!("{}../shared", '"');
    let mut offenders = Vec::new();
    for entry in std::fs::read_dir(repo_file("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs")
            && std::fs::read_to_string(&path).unwrap().contains(&literal)
        {
            offenders.push(path.display().to_string());
        }
    }
    assert!(
        offenders.is_empty(),
        "these tests open ../shared themselves and would skip silently without it: {offenders:?}"
    );
}

#[test]
fn a_missing_shared_folder_fails_unless_the_run_skips_it() {
    let missing = Path::new("/nonexistent/shared/edgegrid-vectors");
    let problem = shared_folder::locate(missing, false, false).unwrap_err();
    assert!(
        problem.contains("/nonexistent/shared/edgegrid-vectors"),
        "{problem}"
    );
    assert!(problem.contains(shared_folder::SKIP_VAR), "{problem}");

    assert_eq!(shared_folder::locate(missing, false, true), Ok(None));

    // CI's requirement wins over a skip inherited from the environment.
    let problem = shared_folder::locate(missing, true, true).unwrap_err();
    assert!(problem.contains(shared_folder::REQUIRE_VAR), "{problem}");

    let present = repo_file("tests");
    assert_eq!(
        shared_folder::locate(&present, true, true),
        Ok(Some(present.clone()))
    );
}

#[test]
fn ci_makes_the_shared_folder_mandatory() {
    let ci = read(".ci/run");
    assert!(
        ci.contains(&format!("export {}=1", shared_folder::REQUIRE_VAR)),
        ".ci/run must set {}=1",
        shared_folder::REQUIRE_VAR
    );
    assert!(!ci.contains(shared_folder::SKIP_VAR));
}

#[test]
fn ci_runs_the_tests_as_readme_gives_them_and_the_ignored_ones() {
    let ci = read(".ci/run");
    let readme = read("README.md");
    assert!(readme.contains("cargo test --workspace"));
    assert!(ci.contains("cargo test --workspace --locked\n"), "{ci}");
    assert!(
        ci.contains("cargo test --workspace --locked -- --ignored"),
        "{ci}"
    );
    assert!(ci.contains("bench/run --quick"), "{ci}");
    // Every #[ignore] names what it needs, and CI installs it.
    let mut sources = String::new();
    collect_rust(&repo_file("tests"), &mut sources);
    collect_rust(&repo_file("src"), &mut sources);
    for reason in sources
        .split("#[ignore = \"needs ")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
    {
        assert!(
            ci.contains(&format!("\nneed {reason} ")),
            "{reason}: .ci/run must install it when it is missing"
        );
    }
}
