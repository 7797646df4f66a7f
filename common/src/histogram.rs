//! Histogram codec: every latency travels as an HdrHistogram (3 significant
//! digits, auto-resizing) serialized in the V2 format, and is merged with
//! `Histogram::add`, which is exact — a merge of many agents' windows equals
//! one histogram fed every sample.

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};

/// Significant decimal digits kept by every stampede histogram.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Largest encoded histogram accepted from the wire (bytes).
pub const MAX_ENCODED_BYTES: usize = 1024 * 1024;

/// Largest value a decoded histogram may track (one day in µs); bounds the
/// memory a hostile or corrupt message can make the decoder allocate.
pub const MAX_TRACKABLE_VALUE: u64 = 86_400_000_000;

/// Errors from encoding or decoding a histogram.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The encoded bytes exceed [`MAX_ENCODED_BYTES`].
    #[error("encoded histogram is {0} bytes, more than the limit of {MAX_ENCODED_BYTES}")]
    TooLarge(usize),
    /// The bytes are not a valid V2 histogram.
    #[error("malformed HDR V2 histogram: {0}")]
    Malformed(String),
    /// The histogram's range exceeds what stampede accepts.
    #[error("histogram tracks values up to {0}, more than the limit of {MAX_TRACKABLE_VALUE}")]
    RangeTooLarge(u64),
    /// Serialization failed.
    #[error("cannot encode histogram: {0}")]
    Encode(String),
    /// Merging two histograms failed.
    #[error("cannot merge histograms: {0}")]
    Merge(String),
}

/// A new empty histogram with stampede's precision.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits is a valid configuration")
}

/// Encode a histogram in the (uncompressed) V2 format.
pub fn encode(hist: &Histogram<u64>) -> Result<Vec<u8>, CodecError> {
    let mut buf = Vec::with_capacity(64);
    V2Serializer::new()
        .serialize(hist, &mut buf)
        .map_err(|e| CodecError::Encode(format!("{e:?}")))?;
    Ok(buf)
}

/// Decode a V2 histogram received from the wire, with bounds checked.
pub fn decode(bytes: &[u8]) -> Result<Histogram<u64>, CodecError> {
    if bytes.len() > MAX_ENCODED_BYTES {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    check_header(bytes)?;
    let mut cursor = std::io::Cursor::new(bytes);
    let hist: Histogram<u64> = Deserializer::new()
        .deserialize(&mut cursor)
        .map_err(|e| CodecError::Malformed(format!("{e:?}")))?;
    Ok(hist)
}

/// Reject headers whose configured range would make the decoder allocate
/// without bound, before handing the bytes to the decoder.
fn check_header(bytes: &[u8]) -> Result<(), CodecError> {
    // V2 header: cookie (4), payload length (4), normalizing offset (4),
    // significant digits (4), lowest value (8), highest value (8), ratio (8).
    if bytes.len() < 40 {
        return Err(CodecError::Malformed(format!(
            "{} bytes is shorter than the 40-byte V2 header",
            bytes.len()
        )));
    }
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let long = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let payload_len = word(4) as usize;
    if payload_len > MAX_ENCODED_BYTES {
        return Err(CodecError::TooLarge(payload_len));
    }
    // stampede's agents always send SIGNIFICANT_DIGITS; more digits would
    // let a small message make the decoder allocate megabytes of counts.
    let sigfig = word(12);
    if sigfig > u32::from(SIGNIFICANT_DIGITS) {
        return Err(CodecError::Malformed(format!(
            "{sigfig} significant digits (at most {SIGNIFICANT_DIGITS})"
        )));
    }
    let lowest = long(16);
    let highest = long(24);
    if lowest == 0 || highest < lowest.saturating_mul(2) {
        return Err(CodecError::Malformed(format!(
            "invalid value range {lowest}..{highest}"
        )));
    }
    if highest > MAX_TRACKABLE_VALUE {
        return Err(CodecError::RangeTooLarge(highest));
    }
    Ok(())
}

/// Add `other` into `into`, exactly.
pub fn merge(into: &mut Histogram<u64>, other: &Histogram<u64>) -> Result<(), CodecError> {
    into.add(other)
        .map_err(|e| CodecError::Merge(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_bucket() {
        let mut h = new_histogram();
        for v in [1u64, 17, 20_000, 20_013, 5_000_000, 5_000_000] {
            h.record(v).unwrap();
        }
        let back = decode(&encode(&h).unwrap()).unwrap();
        assert_eq!(back.len(), h.len());
        for v in h.iter_recorded() {
            assert_eq!(back.count_at(v.value_iterated_to()), v.count_at_value());
        }
    }

    #[test]
    fn empty_histogram_round_trips() {
        let h = new_histogram();
        let back = decode(&encode(&h).unwrap()).unwrap();
        assert_eq!(back.len(), 0);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[0u8; 39]).is_err());
        assert!(decode(&[0xffu8; 64]).is_err());
        let mut bytes = encode(&new_histogram()).unwrap();
        bytes[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(decode(&bytes), Err(CodecError::RangeTooLarge(_))));
    }
}
