//! Bodies the receiver could not deliver (whole or in part) are kept for inspection: never
//! silently discarded. One file per body, named by time, peer and reason, readable by the owner
//! only (events carry client IPs and request headers).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Tells apart two bodies kept in the same microsecond.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Write `body` to a new file in `dir`; the path, for the log line.
pub fn keep(dir: &Path, peer: SocketAddr, reason: &str, body: &[u8]) -> std::io::Result<PathBuf> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let now = jiff::Timestamp::now();
    let peer = peer.to_string().replace([':', '[', ']'], "_");
    let name = format!(
        "{}-{peer}-{reason}-{}.body",
        now.strftime("%Y%m%dT%H%M%S%.6fZ"),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    );
    let path = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(body)?;
    file.sync_data()?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn each_body_gets_its_own_private_file_named_by_time_and_peer() {
        let dir = tempfile::tempdir().unwrap();
        let peer: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        let first = keep(&dir.path().join("q"), peer, "not-json", b"x").unwrap();
        let second = keep(&dir.path().join("q"), peer, "not-json", b"y").unwrap();
        assert_ne!(first, second);
        let name = first.file_name().unwrap().to_str().unwrap();
        assert!(name.contains("_2001_db8__1__443-not-json-"), "{name}");
        assert!(name.starts_with("20"), "{name}");
        assert_eq!(fs::read(&second).unwrap(), b"y");
        let mode = fs::metadata(&first).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
