//! Run the fake Akamai SIEM API by hand:
//!
//!     cargo run -p fake-akamai -- --events 500 --config-dir /tmp/fake
//!     akamai-siem --config /tmp/fake/akamai_config.ini --no-state
//!
//! It stores N events spread over the last S seconds, writes a config for akamai-siem, prints
//! where, and serves until killed. `--trickle N` adds N new events every second.

use fake_akamai::{EventSize, FakeAkamai, Options};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Args {
    events: usize,
    spread_secs: f64,
    config_dir: Option<PathBuf>,
    gzip: bool,
    size: EventSize,
    trickle: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        events: 100,
        spread_secs: 600.0,
        config_dir: None,
        gzip: true,
        size: EventSize::Realistic,
        trickle: 0,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        let mut value = |name: &str| iter.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--events" => {
                args.events = value("--events")?
                    .parse()
                    .map_err(|e| format!("--events: {e}"))?
            }
            "--spread-secs" => {
                args.spread_secs = value("--spread-secs")?
                    .parse()
                    .map_err(|e| format!("--spread-secs: {e}"))?
            }
            "--config-dir" => args.config_dir = Some(PathBuf::from(value("--config-dir")?)),
            "--trickle" => {
                args.trickle = value("--trickle")?
                    .parse()
                    .map_err(|e| format!("--trickle: {e}"))?
            }
            "--no-gzip" => args.gzip = false,
            "--small" => args.size = EventSize::Small,
            "--realistic" => args.size = EventSize::Realistic,
            "-h" | "--help" => {
                println!(
                    "fake-akamai [--events N] [--spread-secs S] [--config-dir DIR] [--trickle N] \
                     [--no-gzip] [--small|--realistic]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other} (try --help)")),
        }
    }
    Ok(args)
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("fake-akamai: {e}");
        std::process::exit(2);
    });
    let server = FakeAkamai::start(Options {
        gzip: args.gzip,
        event_size: args.size,
        ..Options::default()
    })
    .unwrap_or_else(|e| {
        eprintln!("fake-akamai: cannot start: {e}");
        std::process::exit(1);
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // Leave the last minute empty: a stateless window ends 60 s before now.
    server.append_events_spread(args.events, now - args.spread_secs, now - 61.0);
    let dir = args.config_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("fake-akamai-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).expect("create the config directory");
    let config = server.write_config(&dir).expect("write the config");
    println!("host   {}", server.host());
    println!("config {}", config.display());
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if args.trickle > 0 {
            server.append_events(args.trickle);
        }
    }
}
