//! SIGTERM and SIGINT stop a run cleanly: Wazuh's wodle timeout sends SIGTERM (never SIGKILL)
//! and waits without limit, so ignoring it would block the wodle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(Clone)]
pub struct Signals {
    stop: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

impl Signals {
    /// A second signal while the first is being handled ends the process at once (with the
    /// conventional 128 + signal code), for an operator pressing Ctrl-C twice.
    pub fn install() -> std::io::Result<Signals> {
        let signals = Signals::none();
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register_conditional_shutdown(
                signal,
                128 + signal,
                Arc::clone(&signals.stop),
            )?;
            signal_hook::flag::register_usize(signal, Arc::clone(&signals.which), signal as usize)?;
            signal_hook::flag::register(signal, Arc::clone(&signals.stop))?;
        }
        Ok(signals)
    }

    /// Never fires: for commands and tests that need no signal handling.
    pub fn none() -> Signals {
        Signals {
            stop: Arc::new(AtomicBool::new(false)),
            which: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// The signal number, once one arrived.
    pub fn received(&self) -> Option<i32> {
        if !self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let which = self.which.load(Ordering::Relaxed);
        Some(if which == 0 {
            signal_hook::consts::SIGTERM
        } else {
            which as i32
        })
    }

    /// Sleep, waking early when a signal arrives.
    pub fn sleep(&self, duration: std::time::Duration) {
        let deadline = std::time::Instant::now() + duration;
        while self.received().is_none() {
            let now = std::time::Instant::now();
            if now >= deadline {
                return;
            }
            std::thread::sleep((deadline - now).min(std::time::Duration::from_millis(100)));
        }
    }
}
