use super::*;
use crate::config::{SyslogFraming, SyslogMessageFormat, SyslogSeverity};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a test waits for a receiver, so a bug fails instead of hanging.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

fn settings(transport: SyslogTransport, port: u16, budget: Duration) -> SyslogSettings {
    SyslogSettings {
        transport,
        host: "127.0.0.1".into(),
        port,
        framing: SyslogFraming::Newline,
        format: SyslogMessageFormat::Json,
        facility: 16,
        severity: SyslogSeverity::FromEvent,
        app_name: "akamai-siem".into(),
        hostname: "test".into(),
        ca_file: None,
        client_cert: None,
        client_key: None,
        connect_timeout: Duration::from_secs(2),
        io_timeout: TEST_TIMEOUT,
        retry_budget: budget,
    }
}

fn lines(range: std::ops::Range<u32>) -> Vec<u8> {
    range
        .flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes())
        .collect()
}

/// Accept sessions; each reads to EOF, waits `linger`, closes, and reports what it read.
fn receiver(linger: Duration) -> (u16, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (report, sessions) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut read = Vec::new();
            stream.read_to_end(&mut read).unwrap();
            std::thread::sleep(linger);
            drop(stream);
            if report.send(read).is_err() {
                return;
            }
        }
    });
    (port, sessions)
}

#[test]
fn a_commit_waits_until_the_receiver_closed_the_session() {
    let (port, sessions) = receiver(Duration::from_millis(400));
    let mut destination =
        SyslogDestination::open(&settings(SyslogTransport::Tcp, port, Duration::ZERO)).unwrap();
    destination.write_lines(&lines(0..3)).unwrap();
    let started = Instant::now();
    destination.make_durable().unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "returned before the receiver closed ({:?})",
        started.elapsed()
    );
    assert_eq!(sessions.recv_timeout(TEST_TIMEOUT).unwrap(), lines(0..3));
    // The next batch goes in a new session, holding only the new messages.
    destination.write_lines(&lines(3..5)).unwrap();
    destination.make_durable().unwrap();
    assert_eq!(sessions.recv_timeout(TEST_TIMEOUT).unwrap(), lines(3..5));
}

#[test]
fn a_broken_session_is_reopened_and_everything_unconfirmed_sent_again() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (report, sessions) = mpsc::channel();
    std::thread::spawn(move || {
        // First session: read a little, then reset the connection (a receiver that died).
        let (mut first, _) = listener.accept().unwrap();
        let mut some = [0u8; 8];
        first.read_exact(&mut some).unwrap();
        linger_zero(&first);
        drop(first);
        // Second session: the well-behaved receiver.
        let (mut second, _) = listener.accept().unwrap();
        let mut read = Vec::new();
        second.read_to_end(&mut read).unwrap();
        report.send(read).unwrap();
    });
    let mut destination = SyslogDestination::open(&settings(
        SyslogTransport::Tcp,
        port,
        Duration::from_secs(20),
    ))
    .unwrap();
    destination.write_lines(&lines(0..2)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // Writing into a reset connection fails at once or on the confirmation; either way the
    // second session must carry all five lines.
    let _ = destination.write_lines(&lines(2..5));
    destination.make_durable().unwrap();
    assert_eq!(sessions.recv_timeout(TEST_TIMEOUT).unwrap(), lines(0..5));
    assert!(Destination::retries(&destination) >= 1);
}

/// SO_LINGER 0: closing sends a reset instead of a FIN, like a receiver killed mid-session.
fn linger_zero(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    let result = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(result, 0);
}

#[test]
fn a_receiver_that_stays_down_ends_in_an_error_naming_the_budget() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let error = SyslogDestination::open(&settings(
        SyslogTransport::Tcp,
        port,
        Duration::from_millis(800),
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(error.contains("retry_budget is spent"), "{error}");
    assert!(error.contains("refused"), "{error}");
    assert!(started.elapsed() >= Duration::from_millis(700));
}

#[test]
fn unconfirmed_bytes_stay_bounded_by_confirming_sessions_on_the_way() {
    let (port, sessions) = receiver(Duration::ZERO);
    let mut destination =
        SyslogDestination::open(&settings(SyslogTransport::Tcp, port, Duration::ZERO)).unwrap();
    let chunk = lines(0..20_000);
    let mut sent = 0;
    while sent < 3 * CONFIRM_EVERY {
        destination.write_lines(&chunk).unwrap();
        assert!(destination.unconfirmed.len() <= CONFIRM_EVERY);
        sent += chunk.len();
    }
    destination.make_durable().unwrap();
    let mut total = 0;
    let mut count = 0;
    while let Ok(session) = sessions.recv_timeout(Duration::from_secs(2)) {
        total += session.len();
        count += 1;
    }
    assert_eq!(total, sent, "every byte once");
    assert!(count >= 3, "{count} sessions");
}

#[test]
fn udp_sends_one_datagram_per_event() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(TEST_TIMEOUT)).unwrap();
    let port = socket.local_addr().unwrap().port();
    let mut destination =
        SyslogDestination::open(&settings(SyslogTransport::Udp, port, Duration::ZERO)).unwrap();
    destination.write_lines(&lines(0..3)).unwrap();
    destination.make_durable().unwrap();
    let mut buffer = [0u8; 1024];
    for i in 0..3 {
        let n = socket.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], format!("{{\"n\":{i}}}").as_bytes());
    }
    let huge = format!("{{\"a\":\"{}\"}}\n", "x".repeat(70_000));
    let error = destination.write_lines(huge.as_bytes()).unwrap_err();
    assert!(error.to_string().contains("syslog://"), "{error}");
}
