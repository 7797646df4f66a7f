//! Property tests of histogram decoding: arbitrary bytes, and valid
//! encodings truncated, extended or with bytes overwritten, decode to a
//! histogram or a `CodecError` — never a panic, and never a histogram whose
//! range would need more memory than the codec's bounds allow.

use proptest::prelude::*;
use stampede_common::histogram::{self, MAX_TRACKABLE_VALUE, decode, encode, new_histogram};

fn valid_encoding(values: &[u64]) -> Vec<u8> {
    let mut h = new_histogram();
    for v in values {
        let _ = h.record(*v);
    }
    encode(&h).unwrap()
}

fn check(bytes: &[u8]) {
    if let Ok(h) = decode(bytes) {
        assert!(
            h.high() <= MAX_TRACKABLE_VALUE,
            "range {} accepted",
            h.high()
        );
        // Reading it back must not panic either.
        let _ = h.value_at_quantile(0.99);
        let mut into = new_histogram();
        let _ = histogram::merge(&mut into, &h);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        check(&bytes);
    }

    #[test]
    fn arbitrary_payload_behind_a_plausible_header(
        sigfig in 0u32..8,
        lowest in 0u64..4,
        highest in prop_oneof![Just(MAX_TRACKABLE_VALUE), 2u64..1_000_000, any::<u64>()],
        declared in prop_oneof![0u32..64, any::<u32>()],
        payload in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let mut bytes = valid_encoding(&[])[..4].to_vec(); // the V2 cookie
        bytes.extend_from_slice(&declared.to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&sigfig.to_be_bytes());
        bytes.extend_from_slice(&lowest.to_be_bytes());
        bytes.extend_from_slice(&highest.to_be_bytes());
        bytes.extend_from_slice(&1.0f64.to_be_bytes());
        bytes.extend_from_slice(&payload);
        check(&bytes);
    }

    #[test]
    fn corrupted_valid_encodings(
        values in proptest::collection::vec(1u64..100_000_000, 0..50),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        extra in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut bytes = valid_encoding(&values);
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        bytes.extend_from_slice(&extra);
        check(&bytes);
    }
}
