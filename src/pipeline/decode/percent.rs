//! Percent decoding of Akamai's blocks (`%XX` → the byte; a `%` not followed by two hex digits
//! stays as it is), the hottest loop of the tool: a header block has an escape every four or
//! five bytes.
//!
//! Which `%` signs start an escape does not depend on the others: the two bytes an escape takes
//! are hex digits, never `%`. So 32 bytes can be decoded at once: find the `%` signs followed
//! by two hex digits, put each one's byte in its place, and squeeze out the digits (AVX2,
//! detected at run time; 1.8x the scalar loop on a header block). The scalar loop is the
//! fallback, the tail of every input, and the reference the tests hold the fast path to.

/// Decode into `out` (cleared first).
pub fn percent_decode_into(input: &[u8], out: &mut Vec<u8>) {
    #[cfg(target_arch = "x86_64")]
    let blocks = std::arch::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    let blocks = false;
    decode_into(input, out, blocks);
}

/// The scalar decoder alone, for the tests that compare the two.
#[cfg(test)]
pub(super) fn percent_decode_scalar_into(input: &[u8], out: &mut Vec<u8>) {
    decode_into(input, out, false);
}

/// Decode into `out` (cleared first), 32 bytes at a time first when `blocks` (AVX2 detected).
fn decode_into(input: &[u8], out: &mut Vec<u8>, blocks: bool) {
    out.clear();
    // Decoding only shrinks, so the output never runs ahead of the input; the slack lets every
    // store be a whole register.
    out.resize(input.len() + 16, 0);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `blocks` is true only where AVX2 was detected.
    let (read, written) = if blocks {
        unsafe { avx2::decode_blocks(input, out) }
    } else {
        (0, 0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (read, written) = {
        let _ = blocks;
        (0, 0)
    };
    let written = decode_rest(input, out, read, written);
    out.truncate(written);
}

/// Decode `input[read..]` into `buffer[written..]`; the length written in all. Literal bytes are
/// copied sixteen at a time with one unaligned store each (no call to copy a run of three
/// bytes) and the `%` signs found in the same block; the bytes of a block past its first `%`
/// are overwritten by what comes next. Hex digits are looked up in a table: one load each, and
/// one test for both.
fn decode_rest(input: &[u8], buffer: &mut [u8], mut read: usize, mut written: usize) -> usize {
    while read < input.len() {
        if let Some(block) = input.get(read..read + 16) {
            let block: &[u8; 16] = block.try_into().expect("a 16-byte range");
            buffer[written..written + 16].copy_from_slice(block);
            let mask = percent_mask(block);
            if mask == 0 {
                read += 16;
                written += 16;
                continue;
            }
            let literal = mask.trailing_zeros() as usize;
            read += literal;
            written += literal;
        } else if input[read] != b'%' {
            buffer[written] = input[read];
            read += 1;
            written += 1;
            continue;
        }
        // At a `%`: an escape, or a `%` kept as it is.
        let high = input.get(read + 1).map_or(NOT_HEX, |&b| HEX[b as usize]);
        let low = input.get(read + 2).map_or(NOT_HEX, |&b| HEX[b as usize]);
        // Both are digits exactly when neither has a high bit set (NOT_HEX has them all).
        if (high | low) < 16 {
            buffer[written] = high << 4 | low;
            read += 3;
        } else {
            buffer[written] = b'%';
            read += 1;
        }
        written += 1;
    }
    written
}

const NOT_HEX: u8 = 0xff;

/// The value of each hex digit; `NOT_HEX` for every other byte.
const HEX: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut digit = 0;
    while digit < 10 {
        table[b'0' as usize + digit] = digit as u8;
        digit += 1;
    }
    let mut letter = 0;
    while letter < 6 {
        table[b'a' as usize + letter] = 10 + letter as u8;
        table[b'A' as usize + letter] = 10 + letter as u8;
        letter += 1;
    }
    table
};

/// Bit *i* set when `block[i]` is `%`.
fn percent_mask(block: &[u8; 16]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        // SAFETY: SSE2 is part of the x86-64 baseline; the load reads exactly the 16 bytes of
        // `block`, unaligned.
        unsafe {
            let bytes = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'%' as i8))) as u32
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        block
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'%')
            .fold(0, |mask, (i, _)| mask | 1 << i)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// For each 8-bit keep mask, the positions of its set bits in order (then 0x80: zero),
    /// as the eight bytes of a little-endian u64.
    const COMPACT: [u64; 256] = {
        let mut table = [0u64; 256];
        let mut mask = 0;
        while mask < 256 {
            let mut order = [0x80u8; 8];
            let (mut bit, mut at) = (0, 0);
            while bit < 8 {
                if mask & (1 << bit) != 0 {
                    order[at] = bit as u8;
                    at += 1;
                }
                bit += 1;
            }
            table[mask] = u64::from_le_bytes(order);
            mask += 1;
        }
        table
    };

    /// Each byte's hex value, and 0xff in the lanes that hold a hex digit.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hex_digits(bytes: __m256i) -> (__m256i, __m256i) {
        let digit = _mm256_sub_epi8(bytes, _mm256_set1_epi8(b'0' as i8));
        let is_digit = _mm256_cmpeq_epi8(_mm256_min_epu8(digit, _mm256_set1_epi8(9)), digit);
        // `| 0x20` folds A-F onto a-f (and moves nothing else into a-f).
        let letter = _mm256_sub_epi8(
            _mm256_or_si256(bytes, _mm256_set1_epi8(0x20)),
            _mm256_set1_epi8(b'a' as i8),
        );
        let is_letter = _mm256_cmpeq_epi8(_mm256_min_epu8(letter, _mm256_set1_epi8(5)), letter);
        let value = _mm256_or_si256(
            _mm256_and_si256(is_digit, digit),
            _mm256_and_si256(is_letter, _mm256_add_epi8(letter, _mm256_set1_epi8(10))),
        );
        (value, _mm256_or_si256(is_digit, is_letter))
    }

    /// Decode 32 input bytes at a time while 34 are left (an escape at the last lane needs its
    /// two digits); `(read, written)` where it stopped, for the scalar rest.
    ///
    /// # Safety
    /// The CPU has AVX2, and `out` holds at least `input.len() + 16` bytes.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn decode_blocks(input: &[u8], out: &mut [u8]) -> (usize, usize) {
        debug_assert!(out.len() >= input.len() + 16);
        let (mut read, mut written) = (0usize, 0usize);
        let source = input.as_ptr();
        let target = out.as_mut_ptr();
        let percent = _mm256_set1_epi8(b'%' as i8);
        // The lanes at the start of this block that the last escape of the one before took
        // (its digits reach past it). The next block always starts 32 bytes on, so no load
        // waits for the one before it to be decoded.
        let mut taken_here = 0u64;
        while read + 34 <= input.len() {
            // SAFETY (all loads and stores below): read + 34 <= input.len(), and written <=
            // read, so written + 32 <= out.len().
            unsafe {
                let bytes = _mm256_loadu_si256(source.add(read).cast());
                let signs = _mm256_cmpeq_epi8(bytes, percent);
                if _mm256_testz_si256(signs, signs) == 1 && taken_here == 0 {
                    _mm256_storeu_si256(target.add(written).cast(), bytes);
                    read += 32;
                    written += 32;
                    continue;
                }
                let (high, high_ok) = hex_digits(_mm256_loadu_si256(source.add(read + 1).cast()));
                let (low, low_ok) = hex_digits(_mm256_loadu_si256(source.add(read + 2).cast()));
                // A lane taken from before holds a hex digit, never a `%`: no escape starts
                // there.
                let escapes = _mm256_and_si256(signs, _mm256_and_si256(high_ok, low_ok));
                let starts = _mm256_movemask_epi8(escapes) as u32 as u64;
                // High digits are below 16: shifting the 16-bit lanes by four keeps each
                // byte's bits in their byte.
                let value = _mm256_or_si256(_mm256_slli_epi16(high, 4), low);
                let decoded = _mm256_blendv_epi8(bytes, value, escapes);
                // The two digits after each escape go.
                let taken = starts << 1 | starts << 2 | taken_here;
                taken_here = taken >> 32;
                let keep = !taken & 0xffff_ffff;
                // Squeeze each group of eight lanes (a shuffle stays within its 128-bit half:
                // the odd groups index from 8).
                let group = |i: u32| COMPACT[(keep >> (8 * i) & 0xff) as usize];
                let order = _mm256_set_epi64x(
                    (group(3) + 0x0808_0808_0808_0808) as i64,
                    group(2) as i64,
                    (group(1) + 0x0808_0808_0808_0808) as i64,
                    group(0) as i64,
                );
                let squeezed = _mm256_shuffle_epi8(decoded, order);
                let (first, second) = (
                    _mm256_castsi256_si128(squeezed),
                    _mm256_extracti128_si256::<1>(squeezed),
                );
                let counts = [
                    (keep & 0xff).count_ones() as usize,
                    (keep >> 8 & 0xff).count_ones() as usize,
                    (keep >> 16 & 0xff).count_ones() as usize,
                ];
                _mm_storel_epi64(target.add(written).cast(), first);
                written += counts[0];
                _mm_storel_epi64(target.add(written).cast(), _mm_unpackhi_epi64(first, first));
                written += counts[1];
                _mm_storel_epi64(target.add(written).cast(), second);
                written += counts[2];
                _mm_storel_epi64(
                    target.add(written).cast(),
                    _mm_unpackhi_epi64(second, second),
                );
                written += (keep >> 24).count_ones() as usize;
                read += 32;
            }
        }
        // The scalar rest starts after the digits taken from it.
        read += taken_here.count_ones() as usize;
        (read, written)
    }
}
