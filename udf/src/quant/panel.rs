//! The order the VNNI kernels read weights in: panels of 32 output channels where, for
//! each block and each step of four values, the four values of every channel lie side by
//! side (16 channels fill one 64-byte AVX-512 register, 8 one AVX-VNNI register), then
//! each block's 32 scales.
//! Each value is kept with its sign bit flipped (`w + 128` read as unsigned), the operand
//! `vpdpbusd` wants, so the kernel does not flip it at every product; lanes without a
//! channel hold flipped zeros.
//! Weights kept in this order at load (or mapped so from a packed file) spare every
//! product rearranging them; a matrix in row order is rearranged one panel at a time.

use super::{Layout, Q8Rows, BLOCK};

/// Output channels per panel.
pub const CHANNELS: usize = 32;

/// Four-value steps per block.
pub const STEPS: usize = BLOCK / 4;

/// Bytes of one panel of a matrix of `blocks` blocks per row.
pub fn bytes_len(blocks: usize) -> usize {
    blocks * BLOCK * CHANNELS
}

/// Scales of one panel.
pub fn scales_len(blocks: usize) -> usize {
    blocks * CHANNELS
}

/// A weight as the panel keeps it (its sign bit flipped); its own inverse.
#[inline]
pub fn flip(q: i8) -> i8 {
    q ^ i8::MIN
}

/// A panel of `blocks` blocks per row before any channel is filled: flipped zeros.
pub fn empty(blocks: usize) -> Vec<i8> {
    vec![flip(0); bytes_len(blocks)]
}

/// Where the value of channel `lane` (of the panel) at column `col` lies in the panel.
#[inline]
pub fn byte_at(lane: usize, col: usize) -> usize {
    let (block, step, byte) = (col / BLOCK, col % BLOCK / 4, col % 4);
    ((block * STEPS + step) * CHANNELS + lane) * 4 + byte
}

/// Where the scale of channel `lane` for `block` lies in the panel's scales.
#[inline]
pub fn scale_at(lane: usize, block: usize) -> usize {
    block * CHANNELS + lane
}

/// Writes the panel of `w`'s channels `first..first + channels` (`w` in row order) into
/// `bytes` and `scales`, which hold flipped zeros (see [`empty`]) and zeros where the
/// panel has no channel.
pub fn fill(w: &Q8Rows, first: usize, channels: usize, bytes: &mut [i8], scales: &mut [f32]) {
    let blocks = w.blocks;
    let (quants, weight_scales) = (w.quants(), w.scales());
    for lane in 0..channels {
        let c = first + lane;
        let row = &quants[c * blocks * BLOCK..(c + 1) * blocks * BLOCK];
        for (b, block) in row.chunks_exact(BLOCK).enumerate() {
            for (s, four) in block.chunks_exact(4).enumerate() {
                let at = byte_at(lane, b * BLOCK + 4 * s);
                for (byte, &q) in bytes[at..at + 4].iter_mut().zip(four) {
                    *byte = flip(q);
                }
            }
            scales[scale_at(lane, b)] = weight_scales[c * blocks + b];
        }
    }
}

/// One task's panel: borrowed from weights kept in panels, or built from rows.
pub struct Panel<'a> {
    pub bytes: std::borrow::Cow<'a, [i8]>,
    pub scales: std::borrow::Cow<'a, [f32]>,
}

impl<'a> Panel<'a> {
    /// Channels `first..first + channels` of `w` (`first` a multiple of [`CHANNELS`]).
    pub fn of(w: &'a Q8Rows, first: usize, channels: usize) -> Self {
        let (bytes, scales) = (bytes_len(w.blocks), scales_len(w.blocks));
        match w.layout {
            Layout::Panels => {
                let p = first / CHANNELS;
                Panel {
                    bytes: w.quants()[p * bytes..(p + 1) * bytes].into(),
                    scales: w.scales()[p * scales..(p + 1) * scales].into(),
                }
            }
            Layout::Rows => {
                let (mut bytes, mut scales) = (empty(w.blocks), vec![0f32; scales]);
                fill(w, first, channels, &mut bytes, &mut scales);
                Panel {
                    bytes: bytes.into(),
                    scales: scales.into(),
                }
            }
        }
    }
}
