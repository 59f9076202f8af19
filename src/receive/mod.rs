//! `receive`: the push route. Akamai DataStream 2 POSTs batches of the same SIEM events to a
//! custom HTTPS endpoint and retries what is not acknowledged; this module is that endpoint.
//!
//! The HTTP side runs on a small tokio runtime (hyper, tokio-rustls); the events take the same
//! blocking pipeline as fetch (format workers, sink, identity journal) on one writer thread, so
//! the same raw event gives the same output line by either route, and a body is answered 200
//! only after its events are written, fsynced and journalled. A body retried after a crash or
//! a timeout is dropped event by event by the journal.

mod auth;
mod body;
mod quarantine;
mod report;
mod server;
mod tls;
mod writer;

use crate::config::{OutputSettings, ReceiveSettings};
use crate::diagnostics::error_reporting::{Exit, Failure};
use anyhow::Context as _;
use hyper_util::server::graceful::GracefulShutdown;
use report::{Reporter, Stats};
use server::Shared;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, mpsc};
use writer::Writer;

/// How long a stop waits for the bodies in flight before it gives up on them (unacknowledged,
/// so DataStream sends them again).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serve until SIGTERM or SIGINT, then finish the bodies in flight and return.
pub fn run(settings: &ReceiveSettings, output: &OutputSettings) -> anyhow::Result<()> {
    let tls = match &settings.tls {
        Some(files) => Some(tls::server_config(settings, files)?),
        None => None,
    };
    let stats = Arc::new(Stats::default());
    let give_up = Arc::new(AtomicBool::new(false));
    let (jobs, queue) = mpsc::channel(server::BODY_SLOTS);
    let writer_thread = spawn_writer(
        output,
        settings,
        Arc::clone(&stats),
        Arc::clone(&give_up),
        queue,
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Decoding and quarantine writes: at most one per body slot at a time.
        .max_blocking_threads(server::BODY_SLOTS * 2)
        .thread_name("receive")
        .enable_all()
        .build()
        .context("starting the receiver's runtime")?;
    let shared = Arc::new(Shared {
        auth: auth::Authenticator::new(&settings.auth),
        path: settings.path.clone(),
        max_body_bytes: settings.max_body_bytes,
        quarantine_dir: settings.quarantine_dir.clone(),
        jobs,
        stats: Arc::clone(&stats),
        stopping: AtomicBool::new(false),
        body_slots: Semaphore::new(server::BODY_SLOTS),
        tenant: output
            .tags
            .tenant
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        started_at: crate::collect::unix_now(),
    });
    let mut reporter = Reporter::new();
    let served = runtime.block_on(serve(settings, tls, Arc::clone(&shared), &mut reporter));
    give_up.store(true, Ordering::Relaxed);
    // Connections that outlived the grace period are dropped with the runtime; the writer
    // finishes what it holds once the last sender (in `shared`) is gone.
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(shared);
    let _ = writer_thread.join();
    reporter.summary(&stats, "stopped");
    served
}

/// The writer lives on its own thread from the start (a sink stays on the thread that opened
/// it); opening it there is reported back, so a locked state or an unwritable output stops the
/// command before it listens.
fn spawn_writer(
    output: &OutputSettings,
    settings: &ReceiveSettings,
    stats: Arc<Stats>,
    give_up: Arc<AtomicBool>,
    queue: mpsc::Receiver<writer::Job>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let (output, state, quarantine_dir) = (
        output.clone(),
        settings.state.clone(),
        settings.quarantine_dir.clone(),
    );
    let (opened, open_result) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("writer".into())
        .spawn(
            move || match Writer::open(&output, &state, quarantine_dir, stats, give_up) {
                Ok(writer) => {
                    let _ = opened.send(Ok(()));
                    writer.run(queue);
                }
                Err(error) => {
                    let _ = opened.send(Err(error));
                }
            },
        )
        .context("starting the writer thread")?;
    match open_result.recv() {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(anyhow::anyhow!(
            "the writer thread stopped while opening the output"
        )),
    }
}

async fn serve(
    settings: &ReceiveSettings,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<Shared>,
    reporter: &mut Reporter,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(settings.listen).await.map_err(|error| {
        Failure::error(
            Exit::Config,
            format!("cannot listen on {} (`listen`): {error}", settings.listen),
        )
    })?;
    let address = listener.local_addr()?;
    let mut terminate = signal(SignalKind::terminate()).context("installing signal handlers")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing signal handlers")?;
    tracing::info!(
        code = "listening",
        "receiving DataStream pushes on {}://{address}{} (output: {})",
        if tls.is_some() { "https" } else { "http" },
        settings.path.as_deref().unwrap_or("/"),
        if settings.client_ca.is_some() {
            "client certificates required"
        } else {
            "no client certificates"
        }
    );
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(settings.max_connections));
    let mut ticker = tokio::time::interval(settings.summary_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut refused_connections = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of descriptors, or a connection reset before accept: wait a little
                        // rather than spin.
                        tracing::warn!("cannot accept a connection: {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                    refused_connections += 1;
                    if refused_connections.is_power_of_two() {
                        tracing::warn!(
                            code = "too_many_connections",
                            "refused {refused_connections} connection(s) so far: \
                             max_connections ({}) are open",
                            settings.max_connections
                        );
                    }
                    continue;
                };
                let watcher = graceful.watcher();
                let acceptor = acceptor.clone();
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    server::connection(tcp, peer, acceptor, shared, watcher).await;
                    drop(permit);
                });
            }
            _ = ticker.tick() => reporter.summary(&shared.stats, "receiving"),
            // The writer ended on its own: a bug (a panic). Stop, so that the service manager
            // restarts a receiver that can acknowledge again.
            _ = shared.jobs.closed() => {
                shared.stopping.store(true, Ordering::Relaxed);
                return Err(anyhow::anyhow!(
                    "the writer thread stopped unexpectedly; nothing after its last commit was \
                     acknowledged"
                ));
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    shared.stopping.store(true, Ordering::Relaxed);
    drop(listener);
    tracing::info!(
        code = "stopping",
        "stopping: no new connections; finishing the bodies in flight"
    );
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            code = "interrupted",
            "some connections were still busy after {}s; their bodies were not acknowledged and \
             DataStream sends them again",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    Ok(())
}
