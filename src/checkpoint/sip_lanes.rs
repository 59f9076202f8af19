//! SipHash-2-4 (the `h1` half of the 128-bit output) of many lines at once: on x86-64 with
//! AVX2, four lines run side by side in the four 64-bit lanes of 256-bit registers (two such
//! sets interleaved, so one set's rounds fill the other's latency). Output is bit-identical
//! to `siphasher::sip128::SipHasher24` (`finish128().h1`), which stays the fallback.
//!
//! Lines of different lengths: every lane runs in lockstep over the whole words all lanes still
//! have; a lane whose line has no whole word left is finished in scalar code (last block with
//! the length byte, finalisation) and at once refilled with the next line. So lanes never idle
//! while lines remain, and no scalar code runs over a line's body. Once the lines run out, an
//! idle lane repeats a busy lane's words and its result is thrown away.

use siphasher::sip128::{Hasher128, SipHasher24};
use std::hash::Hasher;

/// Calls `done(index, h1)` once for every line, `index` counting from 0 in `lines`' order;
/// results may come in any order.
pub(super) fn hash_each(key: &[u8; 16], lines: &[&[u8]], done: impl FnMut(usize, u64)) {
    #[cfg(target_arch = "x86_64")]
    if use_lanes() {
        // SAFETY: `use_lanes` checked at run time that this CPU has AVX2.
        unsafe { avx2::hash_each(key, lines, done) };
        return;
    }
    scalar_each(key, lines, done);
}

/// Whether the AVX2 lanes are used (std caches the CPUID answer after the first call).
pub(super) fn use_lanes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The reference and fallback: one line at a time with siphasher.
pub(super) fn scalar_each(key: &[u8; 16], lines: &[&[u8]], mut done: impl FnMut(usize, u64)) {
    for (index, line) in lines.iter().enumerate() {
        let mut hasher = SipHasher24::new_with_key(key);
        hasher.write(line);
        done(index, hasher.finish128().h1);
    }
}

/// The state of one line's SipHash before any word.
fn initial(key: &[u8; 16]) -> [u64; 4] {
    let k0 = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
    let k1 = u64::from_le_bytes(key[8..].try_into().expect("8 bytes"));
    [
        k0 ^ 0x736f6d6570736575,
        // No `^ 0xee` here, unlike the 128-bit variant's paper: siphasher leaves it out (its
        // `reset` overwrites it), and identities must stay equal to the ones in journals.
        k1 ^ 0x646f72616e646f83,
        k0 ^ 0x6c7967656e657261,
        k1 ^ 0x7465646279746573,
    ]
}

fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

/// `h1` from the state after all whole words: `tail` is the last 0..=7 bytes, `length` the
/// line's length (only its low byte counts, as the algorithm says).
fn finish_h1(mut v: [u64; 4], tail: &[u8], length: usize) -> u64 {
    debug_assert!(tail.len() < 8);
    let mut last = [0u8; 8];
    last[..tail.len()].copy_from_slice(tail);
    let block = u64::from_le_bytes(last) | ((length as u64 & 0xff) << 56);
    v[3] ^= block;
    round(&mut v);
    round(&mut v);
    v[0] ^= block;
    v[2] ^= 0xee;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{finish_h1, initial};
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi64, _mm256_loadu_si256, _mm256_or_si256, _mm256_permute2x128_si256,
        _mm256_set_epi8, _mm256_shuffle_epi8, _mm256_shuffle_epi32, _mm256_slli_epi64,
        _mm256_srli_epi64, _mm256_storeu_si256, _mm256_unpackhi_epi64, _mm256_unpacklo_epi64,
        _mm256_xor_si256,
    };

    /// Sets of four lanes interleaved: a SipRound is a chain of dependent steps, so a second
    /// independent set keeps the vector units busy while the first waits on its latency.
    const SETS: usize = 2;
    const LANES: usize = 4 * SETS;

    /// One line in a lane: its index, its length, and what is left of it.
    #[derive(Clone, Copy)]
    struct Lane<'a> {
        index: usize,
        length: usize,
        rest: &'a [u8],
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn hash_each(key: &[u8; 16], lines: &[&[u8]], mut done: impl FnMut(usize, u64)) {
        let start = initial(key);
        let mut next = lines.iter().copied().enumerate();
        let mut fill = || {
            next.next().map(|(index, line)| Lane {
                index,
                length: line.len(),
                rest: line,
            })
        };
        let mut lanes: [Option<Lane>; LANES] = [None; LANES];
        // Lane l's state word i is states[i][l]: the layout the vectors load and store.
        let mut states = [[0u64; LANES]; 4];
        for (l, lane) in lanes.iter_mut().enumerate() {
            *lane = fill();
            set_lane(&mut states, l, start);
        }
        loop {
            // Lanes without a whole word left are finished, and take the next line.
            for (l, slot) in lanes.iter_mut().enumerate() {
                while let Some(lane) = *slot
                    && lane.rest.len() < 8
                {
                    done(
                        lane.index,
                        finish_h1(get_lane(&states, l), lane.rest, lane.length),
                    );
                    *slot = fill();
                    set_lane(&mut states, l, start);
                }
            }
            let Some(busy) = lanes.iter().flatten().min_by_key(|lane| lane.rest.len()) else {
                return;
            };
            let words = busy.rest.len() / 8;
            let busy = busy.rest;
            let mut input: [&[u8]; LANES] = [busy; LANES];
            for (slot, lane) in input.iter_mut().zip(&lanes) {
                if let Some(lane) = lane {
                    *slot = lane.rest;
                }
            }
            compress(&mut states, &input, words);
            for lane in lanes.iter_mut().flatten() {
                lane.rest = &lane.rest[words * 8..];
            }
        }
    }

    fn get_lane(states: &[[u64; LANES]; 4], l: usize) -> [u64; 4] {
        [states[0][l], states[1][l], states[2][l], states[3][l]]
    }

    fn set_lane(states: &mut [[u64; LANES]; 4], l: usize, v: [u64; 4]) {
        for (state, word) in states.iter_mut().zip(v) {
            state[l] = word;
        }
    }

    /// The first `words` 8-byte words of every lane's input, compressed into its state.
    #[target_feature(enable = "avx2")]
    fn compress(states: &mut [[u64; LANES]; 4], input: &[&[u8]; LANES], words: usize) {
        // The loads below read `words * 8` bytes from every input: this makes them in bounds.
        assert!(input.iter().all(|bytes| bytes.len() >= words * 8));
        let mut v = [[zero(); 4]; SETS];
        for (set, v) in v.iter_mut().enumerate() {
            for (i, word) in v.iter_mut().enumerate() {
                // SAFETY: 4 u64 (32 bytes) at lane 4*set of a [u64; LANES] row; unaligned load.
                *word = unsafe { _mm256_loadu_si256(states[i][4 * set..].as_ptr().cast()) };
            }
        }
        let mut at = 0;
        // Four words of each lane per step, transposed so that vector k holds word k of 4 lanes.
        while at + 4 <= words {
            for (set, v) in v.iter_mut().enumerate() {
                let row = |lane: usize| {
                    // SAFETY: at + 4 <= words, and every input has words * 8 bytes (asserted).
                    unsafe { _mm256_loadu_si256(input[4 * set + lane][at * 8..].as_ptr().cast()) }
                };
                let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
                let (a, b) = (_mm256_unpacklo_epi64(r0, r1), _mm256_unpackhi_epi64(r0, r1));
                let (c, d) = (_mm256_unpacklo_epi64(r2, r3), _mm256_unpackhi_epi64(r2, r3));
                absorb(v, _mm256_permute2x128_si256::<0x20>(a, c));
                absorb(v, _mm256_permute2x128_si256::<0x20>(b, d));
                absorb(v, _mm256_permute2x128_si256::<0x31>(a, c));
                absorb(v, _mm256_permute2x128_si256::<0x31>(b, d));
            }
            at += 4;
        }
        while at < words {
            for (set, v) in v.iter_mut().enumerate() {
                let mut word = [0u64; 4];
                for (lane, word) in word.iter_mut().enumerate() {
                    let bytes = &input[4 * set + lane][at * 8..at * 8 + 8];
                    *word = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
                }
                // SAFETY: a [u64; 4] is 32 bytes; unaligned load.
                absorb(v, unsafe { _mm256_loadu_si256(word.as_ptr().cast()) });
            }
            at += 1;
        }
        for (set, v) in v.iter().enumerate() {
            for (i, word) in v.iter().enumerate() {
                // SAFETY: as the load above, now a store.
                unsafe { _mm256_storeu_si256(states[i][4 * set..].as_mut_ptr().cast(), *word) };
            }
        }
    }

    #[target_feature(enable = "avx2")]
    fn zero() -> __m256i {
        std::arch::x86_64::_mm256_setzero_si256()
    }

    /// One message word per lane: v3 ^= m, two SipRounds, v0 ^= m.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn absorb(v: &mut [__m256i; 4], m: __m256i) {
        v[3] = _mm256_xor_si256(v[3], m);
        round(v);
        round(v);
        v[0] = _mm256_xor_si256(v[0], m);
    }

    macro_rules! rotl {
        ($x:expr, $n:literal) => {
            _mm256_or_si256(
                _mm256_slli_epi64::<$n>($x),
                _mm256_srli_epi64::<{ 64 - $n }>($x),
            )
        };
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn round(v: &mut [__m256i; 4]) {
        // Rotations by 32 and 16 move whole 32-bit and 8-bit pieces: one shuffle each.
        let rotl32 = |x| _mm256_shuffle_epi32::<0b10_11_00_01>(x);
        let by16 = _mm256_set_epi8(
            13, 12, 11, 10, 9, 8, 15, 14, 5, 4, 3, 2, 1, 0, 7, 6, //
            13, 12, 11, 10, 9, 8, 15, 14, 5, 4, 3, 2, 1, 0, 7, 6,
        );
        v[0] = _mm256_add_epi64(v[0], v[1]);
        v[1] = _mm256_xor_si256(rotl!(v[1], 13), v[0]);
        v[0] = rotl32(v[0]);
        v[2] = _mm256_add_epi64(v[2], v[3]);
        v[3] = _mm256_xor_si256(_mm256_shuffle_epi8(v[3], by16), v[2]);
        v[0] = _mm256_add_epi64(v[0], v[3]);
        v[3] = _mm256_xor_si256(rotl!(v[3], 21), v[0]);
        v[2] = _mm256_add_epi64(v[2], v[1]);
        v[1] = _mm256_xor_si256(rotl!(v[1], 17), v[2]);
        v[2] = rotl32(v[2]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_bytes(n: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; n];
        getrandom::fill(&mut bytes).unwrap();
        bytes
    }

    fn reference(key: &[u8; 16], line: &[u8]) -> u64 {
        SipHasher24::new_with_key(key).hash(line).h1
    }

    fn check(key: &[u8; 16], lines: &[&[u8]]) {
        let expected: Vec<u64> = lines.iter().map(|line| reference(key, line)).collect();
        let mut got = vec![None; lines.len()];
        hash_each(key, lines, |i, h| {
            assert!(got[i].replace(h).is_none(), "line {i} reported twice");
        });
        let got: Vec<u64> = got
            .into_iter()
            .map(|h| h.expect("every line reported"))
            .collect();
        assert_eq!(
            got,
            expected,
            "lengths {:?}",
            lines.iter().map(|l| l.len()).collect::<Vec<_>>()
        );
        let mut scalar = vec![0; lines.len()];
        scalar_each(key, lines, |i, h| scalar[i] = h);
        assert_eq!(scalar, expected);
    }

    #[test]
    fn the_lanes_run_on_this_machine() {
        // The CI machine has AVX2: without this, the lane tests would only test the fallback.
        #[cfg(target_arch = "x86_64")]
        assert!(use_lanes(), "no AVX2: only the scalar path is tested here");
    }

    #[test]
    fn every_length_from_0_to_200_and_a_few_long_ones_hash_as_siphasher() {
        let key: [u8; 16] = random_bytes(16).try_into().unwrap();
        let data = random_bytes(4200);
        let mut lengths: Vec<usize> = (0..=200).collect();
        lengths.extend([1023, 1024, 2200, 2201, 2207, 3999, 4096, 4200]);
        let all: Vec<&[u8]> = lengths.iter().map(|&n| &data[..n]).collect();
        check(&key, &all);
        // Every length in every lane position, and lanes of very different lengths side by side.
        for batch in [1, 2, 3, 4, 5, 8, 9, 17] {
            for window in all.windows(batch).step_by(7) {
                check(&key, window);
            }
            let mut mixed: Vec<&[u8]> = all.iter().rev().step_by(3).copied().take(batch).collect();
            mixed.insert(0, &data[..4096]);
            check(&key, &mixed);
        }
    }

    #[test]
    fn empty_batches_and_empty_lines() {
        let key: [u8; 16] = random_bytes(16).try_into().unwrap();
        check(&key, &[]);
        check(&key, &[b""]);
        check(&key, &[b"", b"", b"", b"", b"", b"", b"", b"", b""]);
        check(&key, &[b"", &random_bytes(3000), b"x", b""]);
    }

    #[test]
    fn random_keys_and_batches() {
        for _ in 0..50 {
            let key: [u8; 16] = random_bytes(16).try_into().unwrap();
            let sizes = random_bytes(12);
            let lines: Vec<Vec<u8>> = sizes
                .iter()
                .map(|&s| random_bytes(usize::from(s) * 9 + usize::from(s % 7)))
                .collect();
            let count = usize::from(sizes[0] % 12) + 1;
            let lines: Vec<&[u8]> = lines.iter().take(count).map(Vec::as_slice).collect();
            check(&key, &lines);
        }
    }
}
