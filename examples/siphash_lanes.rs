//! Micro-benchmark of the identity hash: scalar SipHash-2-4 line by line against the AVX2
//! lanes, on batches of 60 lines of about 2.2 KB (lengths spread ±10%, as real events are):
//!
//!     cargo run --release --example siphash_lanes
//!
//! Prints ns per line and GB/s for each, and checks both give the same hashes.

use akamai_siem::Identity;
use std::time::Instant;

fn main() {
    let identity = Identity::random();
    // Fixed pseudo-random lengths and bytes, so runs compare.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let lines: Vec<Vec<u8>> = (0..60)
        .map(|_| {
            let length = 1980 + (next() % 440) as usize;
            (0..length).map(|_| b' ' + (next() % 90) as u8).collect()
        })
        .collect();
    let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    let bytes: usize = lines.iter().map(|line| line.len()).sum();
    let batches = 20_000;
    let mut results = Vec::new();
    for (name, lanes) in [
        ("scalar", false),
        ("lanes", true),
        ("scalar", false),
        ("lanes", true),
    ] {
        let mut hashes = Vec::with_capacity(lines.len());
        let started = Instant::now();
        for _ in 0..batches {
            hashes.clear();
            if lanes {
                identity.hash_lines(&lines, &mut hashes);
            } else {
                identity.hash_lines_scalar(&lines, &mut hashes);
            }
            std::hint::black_box(&hashes);
        }
        let seconds = started.elapsed().as_secs_f64();
        let count = (batches * lines.len()) as f64;
        println!(
            "{name:>6}: {:7.1} ns/line  {:5.2} GB/s",
            seconds * 1e9 / count,
            (batches * bytes) as f64 / seconds / 1e9
        );
        results.push(hashes);
    }
    assert!(
        results.windows(2).all(|pair| pair[0] == pair[1]),
        "same hashes"
    );
}
