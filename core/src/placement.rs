//! Where a tenant's records belong: the raw partition Java's default partitioner picks for the
//! tenant's key, `toPositive(murmur2(key)) % partition_count`.
//!
//! One tenant has one chain, and a chain lives in one partition, so every record of a tenant must
//! reach the same raw partition whatever client produced it. Java clients place keys this way by
//! default; librdkafka-based clients only with `partitioner=murmur2_random`, Sarama and kafkajs
//! with their own settings (docs/operations.md). The seal processor checks the placement instead
//! of trusting it, and `sealtrail dlq replay` uses the same function to put a misplaced record
//! where it belongs.

/// Kafka's `Utils.murmur2`: `MurmurHash2` (32-bit) with Kafka's seed, reading the key in
/// little-endian 4-byte words.
pub fn murmur2(key: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Kafka's length is a Java int; keys longer than that cannot be sent anyway.
    let length = u32::try_from(key.len()).unwrap_or(u32::MAX);
    let mut h = SEED ^ length;
    let mut words = key.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (index, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * index);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    i32::from_ne_bytes(h.to_ne_bytes())
}

/// The partition Java's default partitioner gives `key` among `partition_count` partitions.
/// `partition_count` must be positive.
pub fn partition_for_key(key: &[u8], partition_count: i32) -> i32 {
    debug_assert!(partition_count > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partition_count.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Kafka's own `UtilsTest.testMurmur2`.
    #[test]
    fn matches_kafkas_murmur2() {
        for (key, hash) in [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            ("abc", 479_470_107),
        ] {
            assert_eq!(murmur2(key.as_bytes()), hash, "key {key}");
        }
    }

    #[test]
    fn partition_is_the_positive_hash_modulo_the_count() {
        // Kafka's hash of "21" is -973,932,308: positive part 1,173,551,340, which is 0 mod 4.
        assert_eq!(partition_for_key(b"21", 4), 0);
        assert_eq!(partition_for_key(b"foobar", 1), 0);
        for count in 1..=16 {
            let partition = partition_for_key(b"tenant-a", count);
            assert!((0..count).contains(&partition));
        }
    }
}
