//! One cache entry on disk: `LCE1`, the width (u32), the vector (f32, little-endian),
//! then the first 16 bytes of a BLAKE3 checksum over the key and everything before it.
//! A torn, truncated or foreign file fails the checksum and is never served.

const MAGIC: &[u8; 4] = b"LCE1";
const CHECKSUM: usize = 16;
const HEADER: usize = 8;

fn checksum(key: &blake3::Hash, body: &[u8]) -> [u8; CHECKSUM] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(key.as_bytes());
    hasher.update(body);
    let mut out = [0u8; CHECKSUM];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..CHECKSUM]);
    out
}

/// The bytes of the entry holding `vector` under `key`.
pub(super) fn encode(key: &blake3::Hash, vector: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER + vector.len() * 4 + CHECKSUM);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(vector.len() as u32).to_le_bytes());
    for value in vector {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    let sum = checksum(key, &bytes);
    bytes.extend_from_slice(&sum);
    bytes
}

/// The vector of an entry read back, if it is whole, `dim` wide and made for `key`.
pub(super) fn decode(key: &blake3::Hash, dim: usize, bytes: &[u8]) -> Option<Vec<f32>> {
    if bytes.len() != HEADER + dim * 4 + CHECKSUM || &bytes[..4] != MAGIC {
        return None;
    }
    let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM);
    let width = u32::from_le_bytes(body[4..8].try_into().ok()?) as usize;
    if width != dim || checksum(key, body) != sum {
        return None;
    }
    Some(
        body[HEADER..]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}
