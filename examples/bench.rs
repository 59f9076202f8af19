//! The benchmark: `bench/run` (which builds the release binaries first), or
//!
//!     cargo build --release && cargo run --release --example bench -- [--quick] [--runs N]
//!
//! For pages of 10,000, 100,000 and 600,000 realistic events (about 2 KB each, every decoding
//! rule exercised) served by the fake Akamai API over TLS on loopback, it runs the release
//! `akamai-siem` end to end into a file (fetch, decode, Wazuh format, write) and reports medians
//! of events/s, MB/s of response body, CPU seconds per million events and peak RSS. Beside each
//! it reports the fake API's own serving ceiling: the same request read by a client that only
//! counts bytes (same TLS and HTTP stack), so a figure limited by the fake is visible as such.
//! With `--baseline PATH` (bench/run passes the release binary of the commit before the
//! performance work) every run of the current binary is paired with one of the baseline on the
//! same page, alternating, so both see the same load on a shared machine; the table then shows
//! the baseline's figures beside the new ones and the median of the paired speed-ups.
//! Then the push route: gzip batches of the same events pushed by four concurrent clients over
//! TLS on loopback to the release `akamai-siem receive` (events/s until the last body is
//! acknowledged, so durable, and the receiver's peak RSS). Last, the start-up cost of an empty
//! run (caught up, one request).

use akamai_siem::Client;
use akamai_siem::Secret;
use akamai_siem::{ApiSettings, parse_config_ids};
use akamai_siem::{Query, Request};
use fake_akamai::{EventSize, FakeAkamai, Options};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Measured {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: u64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Run a command to completion: CPU time from wait4(2), peak RSS from the child's own VmHWM.
///
/// Not ru_maxrss: std spawns with vfork semantics, and at exec the kernel folds the parent's
/// RSS high-water mark into the child's ru_maxrss, so it would report this benchmark's memory.
// The child is reaped by wait4(2), which also gives its CPU time; clippy cannot see that.
#[allow(clippy::zombie_processes)]
fn measure(command: &mut Command) -> Measured {
    let started = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run akamai-siem");
    let pid = child.id() as libc::pid_t;
    let status_path = format!("/proc/{pid}/status");
    let mut max_rss_kib = 0;
    let mut status = 0;
    // SAFETY: rusage is plain data filled by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        if let Some(hwm) = std::fs::read_to_string(&status_path).ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        }) {
            max_rss_kib = max_rss_kib.max(hwm);
        }
        // SAFETY: non-blocking wait4 on our own child with valid out-pointers.
        let waited = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if waited == pid {
            break;
        }
        assert_eq!(waited, 0, "wait4 failed");
        std::thread::sleep(Duration::from_millis(2));
    }
    let wall = started.elapsed();
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let mut stderr = String::new();
        child.stderr.unwrap().read_to_string(&mut stderr).ok();
        panic!("akamai-siem failed ({status}): {stderr}");
    }
    let seconds = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Measured {
        wall,
        cpu: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        max_rss_kib,
    }
}

fn api_settings(fake: &FakeAkamai, ca: &Path) -> ApiSettings {
    let credentials = fake.credentials();
    ApiSettings {
        host: fake.host(),
        config_ids: parse_config_ids(&fake.config_ids()).unwrap(),
        client_token: credentials.client_token.clone(),
        client_secret: Secret::new(credentials.client_secret.clone()),
        access_token: Secret::new(credentials.access_token.clone()),
        max_body: 131_072,
        headers_to_sign: Vec::new(),
        ca_file: Some(ca.to_path_buf()),
        connect_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(60),
    }
}

/// How fast the fake serves the page to a client that only counts the bytes.
fn serving_ceiling(fake: &FakeAkamai, ca: &Path, window: (i64, i64), events: u64) -> (f64, u64) {
    let client = Client::new(&api_settings(fake, ca)).unwrap();
    let request = Request {
        query: Query::Time {
            from: window.0,
            to: Some(window.1),
        },
        limit: events as u32,
    };
    let started = Instant::now();
    let mut body = client.open_page(&request).unwrap();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = body.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        bytes += n as u64;
    }
    (bytes as f64 / started.elapsed().as_secs_f64() / 1e6, bytes)
}

fn binary() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/akamai-siem");
    assert!(
        path.is_file(),
        "build it first: cargo build --release (bench/run does)"
    );
    path
}

/// The medians of one binary's runs on one page.
#[derive(Default)]
struct Runs {
    rates: Vec<f64>,
    throughputs: Vec<f64>,
    cpu_per_million: Vec<f64>,
    rss: Vec<f64>,
    walls: Vec<f64>,
}

impl Runs {
    fn add(&mut self, m: &Measured, events: u64, body_bytes: u64) {
        self.rates.push(events as f64 / m.wall.as_secs_f64());
        self.throughputs
            .push(body_bytes as f64 / m.wall.as_secs_f64() / 1e6);
        self.cpu_per_million
            .push(m.cpu.as_secs_f64() / events as f64 * 1e6);
        self.rss.push(m.max_rss_kib as f64);
        self.walls.push(m.wall.as_secs_f64());
    }
}

/// The events' storage times are pinned, so every run reads the same page however long the
/// benchmark takes (a relative `--from -5m` would slide past them).
fn run_tool(
    binary: &Path,
    config: &Path,
    output: &Path,
    window: (i64, i64),
    limit: u64,
) -> Measured {
    let limit = limit.max(1).to_string();
    let (from, to) = (window.0.to_string(), window.1.to_string());
    measure(
        Command::new(binary)
            .args(["--config", config.to_str().unwrap()])
            .args(["--from", &from, "--to", &to, "--limit", &limit])
            .args(["--max-events", "100000000", "--max-bytes", "1000GiB"])
            .args([
                "--output",
                output.to_str().unwrap(),
                "--diagnostics",
                "text",
            ]),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let runs: usize = args
        .windows(2)
        .find(|w| w[0] == "--runs")
        .map(|w| w[1].parse().expect("--runs N"))
        .unwrap_or(if quick { 1 } else { 5 });
    let value = |name: &str| args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone());
    let baseline = value("--baseline").map(PathBuf::from);
    let baseline_name = value("--baseline-name").unwrap_or_else(|| "baseline".into());
    let current = binary();
    let sizes: &[u64] = if quick {
        &[10_000]
    } else {
        &[10_000, 100_000, 600_000]
    };

    let work = tempfile::tempdir().unwrap();
    if args.iter().any(|a| a == "--receive") {
        receive_figures(work.path(), runs, quick);
        return;
    }
    if baseline.is_some() {
        println!(
            "| page | events/s | MB/s (response body) | fake API ceiling MB/s | tool / ceiling | CPU s per million events | peak RSS | {baseline_name}: MB/s | {baseline_name}: CPU s per million | {baseline_name}: peak RSS | speed-up (paired median) |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    } else {
        println!(
            "| page | events/s | MB/s (response body) | fake API ceiling MB/s | tool / ceiling | CPU s per million events | peak RSS |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|");
    }
    for &events in sizes {
        let fake = FakeAkamai::start(Options {
            event_size: EventSize::Realistic,
            gzip: false,
            ..Options::default()
        })
        .unwrap();
        let t = now();
        fake.append_events_spread(events as usize, t - 250.0, t - 100.0);
        let window = (t as i64 - 260, t as i64 - 90);
        let dir = work.path().join(events.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let config = fake.write_config(&dir).unwrap();
        let ca = dir.join("ca.pem");
        let output = dir.join("events.json");

        let mut ceilings = Vec::new();
        let mut body_bytes = 0;
        for _ in 0..runs.min(3) {
            let (mb_s, bytes) = serving_ceiling(&fake, &ca, window, events);
            ceilings.push(mb_s);
            body_bytes = bytes;
        }
        let (mut new, mut old) = (Runs::default(), Runs::default());
        let mut speedups = Vec::new();
        for _ in 0..runs {
            let mut pair = vec![(&current, &mut new)];
            if let Some(path) = &baseline {
                pair.push((path, &mut old));
            }
            for (binary, into) in pair {
                let _ = std::fs::remove_file(&output);
                let m = run_tool(binary, &config, &output, window, events);
                let lines = std::fs::read(&output)
                    .unwrap()
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                assert_eq!(lines as u64, events, "every event was written");
                into.add(&m, events, body_bytes);
            }
            if baseline.is_some() {
                speedups.push(old.walls.last().unwrap() / new.walls.last().unwrap());
            }
        }
        let _ = std::fs::remove_file(&output);
        let ceiling = median(ceilings);
        let throughput = median(new.throughputs.clone());
        print!(
            "| {events} | {:.0} | {throughput:.0} | {ceiling:.0} | {:.0}% | {:.2} | {:.1} MiB |",
            median(new.rates),
            throughput / ceiling * 100.0,
            median(new.cpu_per_million),
            median(new.rss) / 1024.0
        );
        if baseline.is_some() {
            print!(
                " {:.0} | {:.2} | {:.1} MiB | {:.2}x |",
                median(old.throughputs),
                median(old.cpu_per_million),
                median(old.rss) / 1024.0,
                median(speedups)
            );
        }
        println!();
    }

    receive_figures(work.path(), runs, quick);

    // Start-up: a run that is caught up makes one request and writes nothing.
    let fake = FakeAkamai::start_default().unwrap();
    let dir = work.path().join("empty");
    std::fs::create_dir_all(&dir).unwrap();
    let config = fake.write_config(&dir).unwrap();
    let output = dir.join("events.json");
    let (mut cpu, mut wall) = (vec![], vec![]);
    let t = now() as i64;
    for _ in 0..runs.max(5) * 2 {
        let m = run_tool(&current, &config, &output, (t - 300, t - 90), 10_000);
        cpu.push(m.cpu.as_secs_f64() * 1e3);
        wall.push(m.wall.as_secs_f64() * 1e3);
    }
    println!();
    let count = cpu.len();
    println!(
        "empty run (caught up, one request): {:.1} ms CPU, {:.1} ms wall (medians of {count})",
        median(cpu),
        median(wall)
    );
    println!("runs per figure: {runs}; machine: {}", machine());
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

/// Batches DataStream-like: `per_batch` events and the metadata object, gzipped.
fn gzip_batches(lines: &[String], per_batch: usize) -> Vec<Vec<u8>> {
    use std::io::Write;
    lines
        .chunks(per_batch)
        .enumerate()
        .map(|(index, chunk)| {
            let mut text = chunk.join("\n");
            text.push_str(&format!(
                "\n{{\"limit\":{per_batch},\"offset\":{index},\"total\":{}}}\n",
                chunk.len()
            ));
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(text.as_bytes()).unwrap();
            encoder.finish().unwrap()
        })
        .collect()
}

/// A CA, and a certificate for `receiver.test` signed by it, as PEM files in `dir`.
fn receiver_certificates(dir: &Path) -> rustls::ClientConfig {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["receiver.test".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth()
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The push route: events/s and peak RSS of `receive`, pushed gzip batches by four clients.
fn receive_figures(work: &Path, runs: usize, quick: bool) {
    const PUSHERS: usize = 4;
    const PER_BATCH: usize = 1_000;
    let events: usize = if quick { 10_000 } else { 200_000 };
    let fake = FakeAkamai::start(Options {
        event_size: EventSize::Realistic,
        ..Options::default()
    })
    .unwrap();
    let ids = fake.append_events(events);
    let lines: Vec<String> = ids.map(|id| fake.raw_event_line(id)).collect();
    let raw_bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let batches = std::sync::Arc::new(gzip_batches(&lines, PER_BATCH));
    let gzip_bytes: usize = batches.iter().map(Vec::len).sum();
    drop(lines);
    let dir = work.join("receive");
    std::fs::create_dir_all(&dir).unwrap();
    let tls = receiver_certificates(&dir);
    std::fs::write(
        dir.join("akamai_config.ini"),
        "[default]\nauth_token = bench\n",
    )
    .unwrap();
    let (mut rates, mut rss) = (vec![], vec![]);
    for _ in 0..runs {
        for leftover in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = leftover.file_name().into_string().unwrap_or_default();
            if name.starts_with("events") || name.contains(".receive.") {
                let _ = std::fs::remove_file(leftover.path());
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(binary())
            .args(["--config", "akamai_config.ini", "--diagnostics", "text"])
            .args(["receive", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--tls-cert", "server.pem", "--tls-key", "server.key"])
            .args(["--output", "events.json"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run akamai-siem receive");
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(child.try_wait().unwrap().is_none(), "receive exited");
            std::thread::sleep(Duration::from_millis(10));
        }
        let client = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tls.clone())
            .resolve("receiver.test", ([127, 0, 0, 1], port).into())
            .timeout(Duration::from_secs(60))
            .no_proxy()
            .build()
            .unwrap();
        let url = format!("https://receiver.test:{port}/");
        let started = Instant::now();
        let pushers: Vec<_> = (0..PUSHERS)
            .map(|first| {
                let (client, url, batches) = (client.clone(), url.clone(), batches.clone());
                std::thread::spawn(move || {
                    for body in batches.iter().skip(first).step_by(PUSHERS) {
                        let response = client
                            .post(&url)
                            .header("Authorization", "bench")
                            .header("Content-Encoding", "gzip")
                            .body(body.clone())
                            .send()
                            .unwrap();
                        assert_eq!(response.status(), 200);
                    }
                })
            })
            .collect();
        for pusher in pushers {
            pusher.join().unwrap();
        }
        let wall = started.elapsed();
        rss.push(vm_hwm_kib(child.id()) as f64);
        // SAFETY: kill(2) on our own child's pid, not yet reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert!(child.wait().unwrap().success());
        let written = std::fs::read(dir.join("events.json")).unwrap();
        let written = written.iter().filter(|&&b| b == b'\n').count();
        assert_eq!(written, events, "every pushed event was written");
        rates.push(events as f64 / wall.as_secs_f64());
    }
    println!();
    println!(
        "receive: {events} realistic events in {} gzip batches of {PER_BATCH} ({:.1} MB, {:.0} MB \
         uncompressed) pushed by {PUSHERS} clients over TLS: {:.0} events/s until the last body \
         was acknowledged (durable), peak RSS {:.1} MiB (medians of {runs})",
        batches.len(),
        gzip_bytes as f64 / 1e6,
        raw_bytes as f64 / 1e6,
        median(rates),
        median(rss) / 1024.0
    );
}
