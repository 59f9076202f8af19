use super::*;

/// The page-cache state of a whole file, from the kernel's cachestat(2) (Linux 6.5+).
#[repr(C)]
#[derive(Default, Debug)]
struct CacheStat {
    cached: u64,
    dirty: u64,
    writeback: u64,
    evicted: u64,
    recently_evicted: u64,
}

fn dirty_pages(file: &File) -> u64 {
    use std::os::fd::AsRawFd;
    const SYS_CACHESTAT: libc::c_long = 451;
    let range = [0u64, 0u64]; // offset 0, length 0: the whole file
    let mut stat = CacheStat::default();
    // SAFETY: both pointers are to live values of the layouts cachestat(2) documents.
    let result = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            range.as_ptr(),
            &mut stat as *mut CacheStat,
            0,
        )
    };
    assert_eq!(
        result,
        0,
        "cachestat(2) failed ({}): this test needs Linux 6.5 or later",
        io::Error::last_os_error()
    );
    stat.dirty
}

/// Files on disk, not in a tmpfs (which has no writeback), next to the build.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap()
}

#[test]
fn writeback_starts_once_enough_is_written_so_the_commit_waits_for_little() {
    let dir = scratch();
    let pages = (WRITEBACK_AHEAD / 4096) as u64;
    let chunk = vec![b'x'; 64 * 1024];
    let write = |name: &str, bytes: usize| {
        let (mut file, _) = AppendFile::open(&dir.path().join(name), None).unwrap();
        for _ in 0..bytes / chunk.len() {
            file.write_lines(&chunk).unwrap();
        }
        file
    };

    // Just short of the threshold, the kernel keeps what was written dirty (its own writeback
    // waits 30 s or for gigabytes): the commit would write all of it.
    let held = write("held.json", WRITEBACK_AHEAD - chunk.len());
    assert!(
        dirty_pages(&held.file) >= pages * 9 / 10,
        "{} of {pages} pages dirty before the threshold",
        dirty_pages(&held.file)
    );

    // At the threshold writeback has been started: the pages are being written or clean.
    let kicked = write("kicked.json", WRITEBACK_AHEAD);
    assert!(
        dirty_pages(&kicked.file) <= pages / 10,
        "{} of {pages} pages still dirty after writeback was started",
        dirty_pages(&kicked.file)
    );
}

#[test]
fn starting_writeback_on_what_cannot_be_written_back_is_harmless() {
    let (mut null, _) = AppendFile::open(Path::new("/dev/null"), None).unwrap();
    let chunk = vec![b'x'; WRITEBACK_AHEAD];
    null.write_lines(&chunk).unwrap();
    null.write_lines(&chunk).unwrap();
    assert_eq!(null.make_durable().unwrap(), None);
}
