//! A syslog receiver over TCP, TLS or UDP.
//!
//! Plain syslog over TCP has no acknowledgement: bytes the kernel accepted may never reach the
//! receiver's disk if it dies, so "written and flushed" is not "delivered". What the receiver
//! does confirm is the end of a session: rsyslog (and syslog-ng, and Wazuh's remoted) close their
//! side only after processing everything they read. So a commit closes our side, waits for the
//! receiver to close its own, and only then lets the state move on; the next batch opens a new
//! session. Until then every framed message is kept, and a broken connection is reopened (with
//! backoff, within the run's retry budget) and everything unconfirmed is sent again: at least
//! once, never lost. To keep that memory bounded, a session is also closed and confirmed
//! whenever [`CONFIRM_EVERY`] bytes are unconfirmed, which bounds the duplicates a reconnect can
//! cause. UDP confirms nothing: it is the one lossy route and says so.

mod message;

use super::backoff::{Backoff, GiveUp};
use super::{Destination, OutputError};
use crate::checkpoint::OutputPosition;
use crate::config::{SyslogSettings, SyslogTransport};
use message::{Clock, Shape, frame_into};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Unconfirmed bytes after which the session is closed and confirmed before more is sent: the
/// memory a slow receiver can cost, and the most a reconnect sends twice.
pub const CONFIRM_EVERY: usize = 4 * 1024 * 1024;
/// The largest datagram IPv4 UDP carries.
const UDP_MAX: usize = 65_507;

pub struct SyslogDestination {
    settings: SyslogSettings,
    shape: Shape,
    clock: Clock,
    tls: Option<Arc<ClientConfig>>,
    connection: Option<Connection>,
    /// Framed messages sent since the receiver last confirmed a session.
    unconfirmed: Vec<u8>,
    backoff: Backoff,
}

enum Connection {
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Udp(UdpSocket),
}

impl SyslogDestination {
    /// Set up TLS and open the first session, so that a wrong address, port or certificate
    /// is reported before anything is fetched.
    pub fn open(settings: &SyslogSettings) -> Result<SyslogDestination, OutputError> {
        let setup_error = |message: String| OutputError::Write {
            target: settings.url(),
            source: io::Error::other(message),
        };
        let tls = match settings.transport {
            SyslogTransport::Tls => Some(tls_config(settings).map_err(setup_error)?),
            _ => None,
        };
        let mut destination = SyslogDestination {
            settings: settings.clone(),
            shape: Shape::new(settings),
            clock: Clock::default(),
            tls,
            connection: None,
            unconfirmed: Vec::new(),
            backoff: Backoff::new(settings.retry_budget),
        };
        destination
            .reconnect()
            .map_err(|source| OutputError::Write {
                target: settings.url(),
                source,
            })?;
        Ok(destination)
    }

    fn connect(&self) -> io::Result<Connection> {
        let settings = &self.settings;
        let addresses: Vec<_> = (settings.host.as_str(), settings.port)
            .to_socket_addrs()?
            .collect();
        if settings.transport == SyslogTransport::Udp {
            let mut last = None;
            for address in &addresses {
                let bind = if address.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                match UdpSocket::bind(bind).and_then(|s| s.connect(address).map(|()| s)) {
                    Ok(socket) => return Ok(Connection::Udp(socket)),
                    Err(error) => last = Some(error),
                }
            }
            return Err(last.unwrap_or_else(|| no_address(settings)));
        }
        let mut last = None;
        let mut stream = None;
        for address in &addresses {
            match TcpStream::connect_timeout(address, settings.connect_timeout) {
                Ok(connected) => {
                    stream = Some(connected);
                    break;
                }
                Err(error) => last = Some(error),
            }
        }
        let stream = stream.ok_or_else(|| last.unwrap_or_else(|| no_address(settings)))?;
        stream.set_write_timeout(Some(settings.io_timeout))?;
        stream.set_read_timeout(Some(settings.io_timeout))?;
        let Some(tls) = &self.tls else {
            return Ok(Connection::Tcp(stream));
        };
        let name = ServerName::try_from(settings.host.clone()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: {e}", settings.host),
            )
        })?;
        let client = ClientConnection::new(Arc::clone(tls), name).map_err(io::Error::other)?;
        let mut tls_stream = StreamOwned::new(client, stream);
        // Handshake now: a certificate problem is found before anything is sent.
        while tls_stream.conn.is_handshaking() {
            tls_stream
                .conn
                .complete_io(&mut tls_stream.sock)
                .map_err(certificate_hint)?;
        }
        Ok(Connection::Tls(Box::new(tls_stream)))
    }

    /// Open a new session and send everything unconfirmed on it, retrying within the budget.
    fn reconnect(&mut self) -> io::Result<()> {
        self.connection = None;
        loop {
            let attempt = self.connect().and_then(|mut connection| {
                if !self.unconfirmed.is_empty() {
                    connection.send(&self.unconfirmed)?;
                }
                Ok(connection)
            });
            match attempt {
                Ok(connection) => {
                    self.connection = Some(connection);
                    return Ok(());
                }
                Err(error) => self.wait_after(error)?,
            }
        }
    }

    /// Wait before the next attempt, or give up with what went wrong.
    fn wait_after(&mut self, error: io::Error) -> io::Result<()> {
        if !is_transient(&error) {
            return Err(error);
        }
        let give_up = |why: GiveUp, this: &Self| {
            let unconfirmed = this.unconfirmed.len();
            let when = match why {
                GiveUp::BudgetSpent => "retry_budget is spent",
                GiveUp::Stopped => "the run was asked to stop",
            };
            io::Error::new(
                error.kind(),
                format!(
                    "{error}; {when} after {} reconnect(s), {unconfirmed} bytes unconfirmed \
                     (the state stays at the last event the receiver confirmed; the next run \
                     sends the rest)",
                    this.backoff.retries
                ),
            )
        };
        let delay = match self.backoff.next_delay(None) {
            Ok(delay) => delay,
            Err(why) => return Err(give_up(why, self)),
        };
        tracing::warn!(
            code = "output_retrying",
            "{}: {error}; reconnecting in {:.1}s and sending the {} unconfirmed bytes again",
            self.settings.url(),
            delay.as_secs_f64(),
            self.unconfirmed.len()
        );
        match self.backoff.wait(delay) {
            Ok(()) => Ok(()),
            Err(why) => Err(give_up(why, self)),
        }
    }

    /// Close our side and wait until the receiver closed its own: then it has processed every
    /// byte of the session. On any failure, a new session carries everything again.
    fn confirm(&mut self) -> io::Result<()> {
        loop {
            let Some(connection) = self.connection.take() else {
                if self.unconfirmed.is_empty() {
                    return Ok(());
                }
                self.reconnect()?;
                continue;
            };
            match connection.close_and_wait() {
                Ok(()) => {
                    self.unconfirmed.clear();
                    self.backoff.succeeded();
                    return Ok(());
                }
                Err(error) => {
                    self.wait_after(error)?;
                    self.reconnect()?;
                }
            }
        }
    }

    fn send_datagrams(&mut self, lines: &[u8]) -> io::Result<()> {
        let mut message = Vec::new();
        let now = jiff::Timestamp::now();
        for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            message.clear();
            frame_into(&mut message, line, &self.shape, &mut self.clock, now);
            if message.last() == Some(&b'\n') {
                message.pop();
            }
            if message.len() > UDP_MAX {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "a {}-byte message does not fit in a UDP datagram: use syslog:// (TCP) \
                         or lower max_line_bytes",
                        message.len()
                    ),
                ));
            }
            let Some(Connection::Udp(socket)) = &self.connection else {
                unreachable!("a UDP destination always has its socket")
            };
            socket.send(&message)?;
        }
        Ok(())
    }
}

impl Destination for SyslogDestination {
    fn write_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        if self.settings.transport == SyslogTransport::Udp {
            return self.send_datagrams(lines);
        }
        if self.unconfirmed.len() + lines.len() > CONFIRM_EVERY {
            self.confirm()?;
        }
        let start = self.unconfirmed.len();
        let now = jiff::Timestamp::now();
        for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            frame_into(
                &mut self.unconfirmed,
                line,
                &self.shape,
                &mut self.clock,
                now,
            );
        }
        if self.connection.is_none() {
            // The last session was confirmed and closed: a new one carries the new messages.
            return self.reconnect();
        }
        let sent = match &mut self.connection {
            Some(connection) => connection.send(&self.unconfirmed[start..]),
            None => unreachable!("connected above"),
        };
        match sent {
            Ok(()) => Ok(()),
            Err(error) => {
                self.wait_after(error)?;
                self.reconnect()
            }
        }
    }

    fn make_durable(&mut self) -> io::Result<Option<OutputPosition>> {
        if self.settings.transport != SyslogTransport::Udp {
            self.confirm()?;
        }
        Ok(None)
    }

    fn describe(&self) -> String {
        self.settings.url()
    }

    fn set_stop(&mut self, stop: Arc<AtomicBool>) {
        self.backoff.set_stop(stop);
    }

    fn retries(&self) -> u64 {
        self.backoff.retries
    }
}

impl Connection {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Connection::Tcp(stream) => stream.write_all(bytes),
            Connection::Tls(stream) => {
                stream.write_all(bytes)?;
                stream.flush()
            }
            Connection::Udp(_) => unreachable!("datagrams are sent one by one"),
        }
    }

    /// Half-close, then read until the receiver closes: it read and processed everything.
    fn close_and_wait(self) -> io::Result<()> {
        let mut buffer = [0u8; 512];
        match self {
            Connection::Tcp(mut stream) => {
                stream.shutdown(Shutdown::Write)?;
                loop {
                    // A syslog receiver sends nothing back; whatever it does send is not ours.
                    if stream.read(&mut buffer)? == 0 {
                        return Ok(());
                    }
                }
            }
            Connection::Tls(mut stream) => {
                stream.conn.send_close_notify();
                while stream.conn.wants_write() {
                    stream.conn.write_tls(&mut stream.sock)?;
                }
                stream.sock.shutdown(Shutdown::Write)?;
                loop {
                    match stream.read(&mut buffer) {
                        Ok(0) => return Ok(()),
                        Ok(_) => {}
                        // The receiver closed the TCP session without its own close_notify:
                        // it still closed only after reading everything (rsyslog does this).
                        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                            return Ok(());
                        }
                        Err(error) => return Err(error),
                    }
                }
            }
            Connection::Udp(_) => Ok(()),
        }
    }
}

/// Worth another attempt: the receiver may be restarting, or the network recovering. A refused
/// certificate or a bad name stays refused until someone changes the configuration.
fn is_transient(error: &io::Error) -> bool {
    !matches!(
        error.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::PermissionDenied
    )
}

fn no_address(settings: &SyslogSettings) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} resolves to no address", settings.host),
    )
}

fn certificate_hint(error: io::Error) -> io::Error {
    let verdict = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(ToString::to_string);
    match verdict {
        Some(verdict) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "TLS with the syslog receiver failed: {verdict}; set syslog_ca_file to the CA \
                 that signed its certificate (and syslog_client_cert/syslog_client_key if it \
                 requires a client certificate)"
            ),
        ),
        None => error,
    }
}

fn tls_config(settings: &SyslogSettings) -> Result<Arc<ClientConfig>, String> {
    crate::source::api::install_crypto_provider();
    let builder = ClientConfig::builder();
    let builder = match &settings.ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("syslog_ca_file {}: {e}", path.display()))?;
            if certificates.is_empty() {
                return Err(format!(
                    "syslog_ca_file {} holds no PEM certificate",
                    path.display()
                ));
            }
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|e| format!("syslog_ca_file {}: {e}", path.display()))?;
            }
            builder.with_root_certificates(roots)
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| format!("cannot load the system's trusted certificates: {e}"))?
        }
    };
    let config = match (&settings.client_cert, &settings.client_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("syslog_client_cert {}: {e}", cert.display()))?;
            // The key's own error would quote nothing of it, but say only which file failed.
            let private = PrivateKeyDer::from_pem_file(key).map_err(|_| {
                format!(
                    "syslog_client_key {} holds no usable PEM private key",
                    key.display()
                )
            })?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| format!("syslog_client_cert/syslog_client_key: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests;
