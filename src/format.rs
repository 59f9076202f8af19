//! One parsed API event in, one output line out, in the chosen format.

use crate::config::{Format, OutputSettings};
use crate::decode::Decoder;
use crate::event::Value;
use crate::wazuh;

pub struct Formatter {
    format: Format,
    wazuh: wazuh::Limits,
    decoder: Decoder,
}

/// What formatting noticed about an event, for the run's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Formatted {
    /// Some field could not be decoded (the event lists which in `decodeErrors`).
    pub decode_errors: bool,
    /// The line was too big for Wazuh and had fields cut (listed in the event).
    pub shrunk: bool,
}

impl Formatter {
    pub fn new(output: &OutputSettings) -> Formatter {
        Formatter {
            format: output.format,
            wazuh: wazuh::Limits {
                max_line_bytes: output.max_line_bytes,
                ..wazuh::Limits::default()
            },
            decoder: Decoder::default(),
        }
    }

    /// Append the line for `event` (without newline) to `out`. `raw` is the API's line.
    pub fn write(&mut self, raw: &[u8], event: Value<'_>, out: &mut Vec<u8>) -> Formatted {
        match self.format {
            Format::Raw => {
                out.extend_from_slice(raw);
                Formatted::default()
            }
            Format::Json => {
                let decoded = self.decoder.decode_event(event);
                let decode_errors = decoded.get("decodeErrors").is_some();
                decoded.write_compact(out);
                Formatted {
                    decode_errors,
                    shrunk: false,
                }
            }
            Format::Wazuh => {
                let decoded = self.decoder.decode_event(event);
                let decode_errors = decoded.get("decodeErrors").is_some();
                let shrunk = wazuh::write_event(decoded, out, &self.wazuh).shrunk;
                Formatted {
                    decode_errors,
                    shrunk,
                }
            }
        }
    }
}
