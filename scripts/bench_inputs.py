"""Inputs shared by the encoder benchmarks: the seeded chunk lengths and the token-budget
batching of udf/benches/encoder_throughput.rs and Lancet's encoder, so that every engine
measures the same work."""


def chunk_lengths(n: int, seed: int) -> list[int]:
    """The seeded lengths of udf/benches/encoder_throughput.rs (64..=512 tokens)."""
    mask = (1 << 64) - 1
    state = (seed + 0x9E3779B97F4A7C15) & mask
    out = []
    for _ in range(n):
        state ^= (state << 13) & mask
        state ^= state >> 7
        state ^= (state << 17) & mask
        out.append(64 + state % 449)
    return out


def batches(lengths: list[int], budget: int) -> list[list[int]]:
    """Length-sorted batches under a token budget, as Lancet's encoder forms them."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    out, cur, cur_max = [], [], 0
    for i in order:
        m = max(cur_max, lengths[i], 1)
        if cur and m * (len(cur) + 1) > budget:
            out.append(cur)
            cur, cur_max = [], 0
        cur_max = max(cur_max, lengths[i])
        cur.append(i)
    if cur:
        out.append(cur)
    return out
