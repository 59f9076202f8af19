//! `completions` and `man`: generated from the clap definitions at run time, so they can never
//! drift from `--help`. Neither reads a config: they work on a fresh install.

use crate::cli::{Cli, Shell};
use crate::diagnostics::error_reporting::{Exit, Failure};
use clap::CommandFactory;
use std::io::Write;
use std::path::Path;

const BIN: &str = "akamai-siem";

pub(super) fn completions(shell: Shell) -> anyhow::Result<Exit> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut script);
    print(&script)
}

/// The main page on stdout, or every page into `dir`.
pub(super) fn man(dir: Option<&Path>) -> anyhow::Result<Exit> {
    let pages = man_pages().map_err(internal)?;
    let Some(dir) = dir else {
        return print(&pages[0].1);
    };
    for (name, page) in &pages {
        let path = dir.join(name);
        std::fs::write(&path, page).map_err(|e| {
            Failure::error(
                Exit::Output,
                format!("man --dir: cannot write {}: {e}", path.display()),
            )
        })?;
    }
    Ok(Exit::Success)
}

/// `(file name, roff)` for the tool and each subcommand, the tool's own page first. The
/// subcommands' pages exist because the main page refers to them (akamai-siem-state(1)).
fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    // `help` is --help's job; its page would only repeat this one.
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let mut pages = Vec::new();
    add_pages(&command, &mut pages)?;
    Ok(pages)
}

fn add_pages(command: &clap::Command, pages: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(command.clone())
        .section("1")
        .manual("User Commands")
        // The footer holds the release only: the commit and target are in VERSION, and a long
        // footer overprints the manual's name.
        .source(format!("{BIN} {}", env!("CARGO_PKG_VERSION")));
    let mut page = Vec::new();
    man.render(&mut page)?;
    pages.push((man.get_filename(), page));
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        add_pages(sub, pages)?;
    }
    Ok(())
}

fn internal(error: std::io::Error) -> anyhow::Error {
    Failure::error(
        Exit::Internal,
        format!("cannot render the man page: {error}"),
    )
}

fn print(bytes: &[u8]) -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Failure::error(Exit::Output, format!("cannot write to stdout: {e}")))?;
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_is_a_page_for_every_page_the_main_page_refers_to() {
        let pages = man_pages().unwrap();
        let main = String::from_utf8(pages[0].1.clone()).unwrap();
        assert_eq!(pages[0].0, "akamai-siem.1");
        assert!(main.contains(".TH akamai-siem 1"), "{main:.400}");
        assert!(
            main.contains("Exit codes"),
            "the exit codes belong in the page"
        );
        let names: Vec<&str> = pages.iter().map(|(name, _)| name.as_str()).collect();
        for sub in Cli::command().get_subcommands() {
            let file = format!("akamai-siem-{}.1", sub.get_name());
            if sub.get_name() != "help" {
                assert!(names.contains(&file.as_str()), "no {file} in {names:?}");
                assert!(main.contains(&format!("akamai\\-siem\\-{}", sub.get_name())));
            }
        }
        assert!(names.contains(&"akamai-siem-state-reset.1"), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
    }
}
