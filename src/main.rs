use akamai_siem::Cli;
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    keep_freed_memory_for_reuse();
    // Usage errors exit 2, --help and --version 0; never 127 (Wazuh discards that output).
    match Cli::try_parse() {
        Ok(cli) => akamai_siem::main(cli),
        Err(error) => akamai_siem::main_with_usage_error(error),
    }
}

/// A large page goes through the format workers as some 900 batches of 256 KiB, each with its
/// output buffer, allocated on one thread and freed on another. glibc's defaults give such
/// buffers back to the kernel when they are freed (munmap, or trimming the heap) and take fresh
/// zeroed pages for the next ones: 24,700 page faults and about 5% of the CPU on a
/// 100,000-event page. Fixed thresholds keep freed memory for the next batch; peak RSS is
/// unchanged (what is kept is what the next batches use).
fn keep_freed_memory_for_reuse() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 * 1024 * 1024);
    }
}
