//! Histogram codec: every latency travels as an HdrHistogram (3 significant
//! digits, auto-resizing) serialized in the V2 format, and is merged bucket
//! for bucket ([`Counts`], or `Histogram::add`), which is exact — a merge of
//! many agents' windows equals one histogram fed every sample.

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

/// A histogram as it travels, without its counts array: the index and the
/// count of each non-empty bucket, in increasing order, in the layout the
/// sender's histogram had. Adding it to [`Counts`] gives exactly what
/// `Histogram::add` of the decoded histogram gives, bucket for bucket, at a
/// cost that grows with the buckets in use (a few thousand in a busy
/// window) rather than with the histogram's range (tens of thousands of
/// counters to allocate, zero and scan): the controller merges thousands of
/// windows a second this way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buckets {
    /// (index, count) of each non-empty bucket, increasing.
    /// A count above `u32::MAX` (in no real window) takes several entries
    /// of its index, so that an entry is 8 bytes: decoding writes them and
    /// merging reads them, a few thousand per busy window.
    buckets: Vec<(u32, u32)>,
    /// Where the sender's buckets sit.
    layout: Layout,
}

impl Buckets {
    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .fold(0u64, |n, (_, c)| n.saturating_add(u64::from(*c)))
    }

    /// Whether no value is recorded.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Each non-empty bucket, in increasing order: the lowest value it
    /// stands for, and its count (a count above `u32::MAX` comes in parts,
    /// one after the other).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, u64)> + '_ {
        self.buckets
            .iter()
            .map(|&(i, n)| (self.layout.value_at(i as usize), u64::from(n)))
    }

    /// The value in the middle of the bucket whose lowest value is `low`:
    /// what `Histogram::median_equivalent` gives, and what its `mean` and
    /// sums count each recorded value as.
    pub fn median_of(&self, low: u64) -> u64 {
        self.layout.median_of(low)
    }
}

/// Decode a V2 histogram received from the wire into its non-empty
/// buckets, with the checks of [`decode`].
pub fn decode_buckets(bytes: &[u8]) -> Result<Buckets, CodecError> {
    if bytes.len() > MAX_ENCODED_BYTES {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    check_header(bytes)?;
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let long = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let malformed = |what: &str| CodecError::Malformed(what.to_string());
    if word(0) != V2_COOKIE {
        return Err(malformed("not an uncompressed V2 histogram"));
    }
    if word(8) != 0 || f64::from_bits(long(32)) != 1.0 {
        return Err(malformed(
            "normalizing offset or integer ratio not supported",
        ));
    }
    let payload = bytes[40..]
        .get(..word(4) as usize)
        .ok_or_else(|| malformed("payload shorter than its header says"))?;
    let layout = Layout::new(word(12), long(16), long(24));
    // Each count takes a byte at least; most runs of empty buckets one too.
    let mut buckets = Vec::with_capacity(payload.len() / 2);
    let (mut index, mut at) = (0usize, 0usize);
    while let Some(&first) = payload.get(at) {
        // Most counts and runs of a window fit in one byte.
        let n = if first < 0x80 {
            at += 1;
            u64::from(first)
        } else {
            let (n, used) =
                read_varint(&payload[at..]).ok_or_else(|| malformed("truncated count"))?;
            at += used;
            n
        };
        // Zigzag: odd numbers are runs of -(n >> 1) - 1, i.e. that many
        // empty buckets; even ones are the count n >> 1.
        if n & 1 == 1 {
            index = index.saturating_add((n >> 1) as usize).saturating_add(1);
            continue;
        }
        if n > 0 {
            if index >= layout.len {
                return Err(malformed("more counts than the histogram's range holds"));
            }
            // The range is checked, so every index fits in 32 bits.
            push_count(&mut buckets, index as u32, n >> 1);
        }
        index += 1;
    }
    Ok(Buckets { buckets, layout })
}

/// Add bucket `index`'s `count` to `buckets`, in entries of at most
/// `u32::MAX`.
fn push_count(buckets: &mut Vec<(u32, u32)>, index: u32, mut count: u64) {
    while count > u64::from(u32::MAX) {
        buckets.push((index, u32::MAX));
        count -= u64::from(u32::MAX);
    }
    buckets.push((index, count as u32));
}

/// A histogram's counters in the layout of [`new_histogram`], growing with
/// the largest value counted: what windows are merged into. Adding
/// [`Buckets`] of that layout is an addition per bucket, with none of
/// `Histogram::record_n`'s work per value (its index, range, minimum and
/// maximum); [`Counts::to_histogram`] gives the histogram once, when it is
/// read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    counts: Vec<u64>,
    total: u64,
}

impl Counts {
    /// Values counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Whether no value is counted.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Count `value` `n` times (saturating), as `Histogram::record_n` of a
    /// histogram made by [`new_histogram`] would; a value over
    /// [`MAX_TRACKABLE_VALUE`] (which no decoded histogram holds) counts as it.
    pub fn record_n(&mut self, value: u64, n: u64) {
        self.add_at(STANDARD.index_of(value.min(MAX_TRACKABLE_VALUE)), n);
    }

    fn add_at(&mut self, index: usize, n: u64) {
        if index >= self.counts.len() {
            self.counts.resize(index + 1, 0);
        }
        self.counts[index] = self.counts[index].saturating_add(n);
        self.total = self.total.saturating_add(n);
    }

    /// Add a decoded histogram's buckets. Buckets of another layout (other
    /// precision or lowest value) are placed by their lowest value, as
    /// `Histogram::add` places them.
    pub fn add_buckets(&mut self, b: &Buckets) {
        if b.layout != STANDARD {
            for (value, n) in b.iter().rev() {
                self.record_n(value, n);
            }
            return;
        }
        if let Some(&(last, _)) = b.buckets.last()
            && last as usize >= self.counts.len()
        {
            self.counts.resize(last as usize + 1, 0);
        }
        for &(i, n) in &b.buckets {
            let c = &mut self.counts[i as usize];
            *c = c.saturating_add(u64::from(n));
            self.total = self.total.saturating_add(u64::from(n));
        }
    }

    /// `self += other`, exactly.
    pub fn add(&mut self, other: &Counts) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a = a.saturating_add(*b);
        }
        self.total = self.total.saturating_add(other.total);
    }

    /// Each non-empty bucket, in increasing order: the lowest value it
    /// stands for, and its count.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (STANDARD.value_at(i), *n))
    }

    /// The value in the middle of the bucket whose lowest value is `low`
    /// (`Histogram::median_equivalent`).
    pub fn median_of(&self, low: u64) -> u64 {
        STANDARD.median_of(low)
    }

    /// The histogram these counts are, as [`new_histogram`] would hold them
    /// had it recorded every value.
    pub fn to_histogram(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        // Largest first: an auto-resizing histogram resizes at most once.
        // In range and far from overflow (counts saturate first): cannot fail.
        for (value, n) in self.iter().rev() {
            let _ = h.record_n(value, n);
        }
        h
    }
}

/// The cookie of an uncompressed V2 histogram.
const V2_COOKIE: u32 = 0x1c84_9313;

/// Where each counter of an HdrHistogram sits, as the `hdrhistogram` crate
/// lays it out for a precision and range (header already checked).
#[derive(Debug, Clone, Copy, Default)]
struct Layout {
    unit_magnitude: u32,
    half_magnitude: u32,
    /// Counters in the array.
    len: usize,
}

/// Two layouts place every value alike when their precision and lowest
/// value agree; their lengths (ranges) may differ.
impl PartialEq for Layout {
    fn eq(&self, o: &Layout) -> bool {
        (self.unit_magnitude, self.half_magnitude) == (o.unit_magnitude, o.half_magnitude)
    }
}

impl Eq for Layout {}

/// The layout of [`new_histogram`]: [`SIGNIFICANT_DIGITS`], lowest value 1,
/// up to [`MAX_TRACKABLE_VALUE`].
const STANDARD: Layout = Layout {
    unit_magnitude: 0,
    half_magnitude: 10,
    len: 0,
};

impl Layout {
    fn new(digits: u32, lowest: u64, highest: u64) -> Self {
        let largest = 2 * 10u64.pow(digits);
        let count_magnitude = largest.next_power_of_two().trailing_zeros();
        let unit_magnitude = lowest.ilog2();
        let mut untrackable = 1u64 << (count_magnitude + unit_magnitude);
        let mut buckets = 1usize;
        while untrackable <= highest {
            untrackable <<= 1;
            buckets += 1;
        }
        Layout {
            unit_magnitude,
            half_magnitude: count_magnitude - 1,
            len: (buckets + 1) << (count_magnitude - 1),
        }
    }

    /// The lowest value counted at `index`.
    fn value_at(&self, index: usize) -> u64 {
        let half = 1usize << self.half_magnitude;
        let bucket = (index >> self.half_magnitude) as i64 - 1;
        let mut sub = (index & (half - 1)) + half;
        let bucket = if bucket < 0 {
            sub -= half;
            0
        } else {
            bucket as u32
        };
        (sub as u64) << (bucket + self.unit_magnitude)
    }

    /// The index of the counter holding `value` (`Histogram::index_for`).
    fn index_of(&self, value: u64) -> usize {
        let half = self.half_magnitude;
        let mask = ((1u64 << (half + 1)) - 1) << self.unit_magnitude;
        let bucket = (63 - self.unit_magnitude - half) - (value | mask).leading_zeros();
        let sub = value >> (bucket + self.unit_magnitude);
        ((bucket as usize + 1) << half) + sub as usize - (1usize << half)
    }

    /// The middle of the bucket whose lowest value is `low`.
    fn median_of(&self, low: u64) -> u64 {
        low.saturating_add(self.width(low) >> 1)
    }

    /// How many values the bucket holding `value` stands for: one unit up
    /// to the end of the first bucket, then doubling with each bucket.
    #[inline]
    fn width(&self, value: u64) -> u64 {
        let first_end = 2u64 << (self.half_magnitude + self.unit_magnitude);
        if value < first_end {
            1 << self.unit_magnitude
        } else {
            1 << (value.ilog2() - self.half_magnitude)
        }
    }
}

/// An HdrHistogram LEB128 number (at most 9 bytes, the last one whole):
/// the number and the bytes it took.
fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(9) {
        if i == 8 {
            return Some((value | u64::from(b) << 56, 9));
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
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

    /// Every recorded bucket of `h`: its value and count.
    fn all(h: &Histogram<u64>) -> Vec<(u64, u64)> {
        h.iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    #[test]
    fn counts_add_exactly_like_decoded_histograms() {
        use rand::{Rng, SeedableRng, rngs::SmallRng};
        let mut rng = SmallRng::seed_from_u64(3);
        let (mut by_add, mut counts) = (new_histogram(), Counts::default());
        // stampede's layout, then others' (other precision or lowest
        // value), which are placed by value as `Histogram::add` places them.
        let layouts = [(1, 3), (1, 3), (1, 3), (1, 2), (1_000, 3), (3, 1)];
        for round in 0..60 {
            let (lowest, digits) = layouts[round % layouts.len()];
            let mut h =
                Histogram::<u64>::new_with_bounds(lowest, MAX_TRACKABLE_VALUE, digits).unwrap();
            h.auto(true);
            for _ in 0..rng.random_range(0..2_000) {
                // Values over nine decades, a few huge ones.
                let v = 10f64.powf(rng.random::<f64>() * 9.0) as u64;
                h.record_n(v.max(lowest), rng.random_range(1..4)).unwrap();
            }
            if round % 7 == 0 {
                h.record(MAX_TRACKABLE_VALUE / 2).unwrap();
            }
            let bytes = encode(&h).unwrap();
            merge(&mut by_add, &decode(&bytes).unwrap()).unwrap();
            let b = decode_buckets(&bytes).unwrap();
            assert_eq!(b.count(), h.len());
            counts.add_buckets(&b);
        }
        let (mut halves, mut other) = (Counts::default(), Counts::default());
        for (i, (v, n)) in counts.iter().enumerate() {
            let into = if i % 2 == 0 { &mut halves } else { &mut other };
            into.record_n(v, n);
        }
        halves.add(&other);
        assert_eq!(halves, counts);
        let by_counts = counts.to_histogram();
        assert_eq!(all(&by_add), all(&by_counts));
        assert_eq!(counts.count(), by_add.len());
        assert_eq!(
            (by_add.len(), by_add.min(), by_add.max()),
            (by_counts.len(), by_counts.min(), by_counts.max())
        );
        assert_eq!(by_add.mean(), by_counts.mean());
    }

    #[test]
    fn counts_place_each_value_where_the_histogram_does() {
        use rand::{Rng, SeedableRng, rngs::SmallRng};
        let mut rng = SmallRng::seed_from_u64(11);
        let values = (0..64u32)
            .flat_map(|bit| [1u64 << bit, (1u64 << bit) - 1, (1u64 << bit) + 1])
            .chain((0..20_000).map(|_| rng.random_range(0..=MAX_TRACKABLE_VALUE)))
            .filter(|v| *v <= MAX_TRACKABLE_VALUE);
        for v in values {
            let mut h = new_histogram();
            h.record(v).unwrap();
            let mut c = Counts::default();
            c.record_n(v, 2);
            assert_eq!(
                c.iter().collect::<Vec<_>>(),
                vec![(h.lowest_equivalent(v), 2)],
                "{v}"
            );
            assert_eq!(
                c.median_of(h.lowest_equivalent(v)),
                h.median_equivalent(v),
                "{v}"
            );
        }
        assert!(Counts::default().to_histogram().is_empty());
    }

    #[test]
    fn each_bucket_median_is_the_histograms_median_equivalent() {
        use rand::{Rng, SeedableRng, rngs::SmallRng};
        let mut rng = SmallRng::seed_from_u64(5);
        // Other precisions and lowest values than stampede's, whose buckets
        // sit elsewhere: the median follows the histogram's own layout.
        for (lowest, digits) in [(1, 3), (1, 2), (1_000, 3), (64, 2), (3, 1)] {
            let mut h =
                Histogram::<u64>::new_with_bounds(lowest, MAX_TRACKABLE_VALUE, digits).unwrap();
            for _ in 0..3_000 {
                let v = 10f64.powf(rng.random::<f64>() * 10.0) as u64;
                h.record(v.clamp(lowest, MAX_TRACKABLE_VALUE)).unwrap();
            }
            let bytes = encode(&h).unwrap();
            let (b, whole) = (decode_buckets(&bytes).unwrap(), decode(&bytes).unwrap());
            assert!(b.iter().count() > 100, "lowest {lowest}, {digits} digits");
            for (low, n) in b.iter() {
                assert_eq!(
                    b.median_of(low),
                    whole.median_equivalent(low),
                    "value {low}"
                );
                assert_eq!(whole.count_at(low), n);
            }
        }
    }

    #[test]
    fn counts_beyond_32_bits_are_kept_whole() {
        let mut h = new_histogram();
        let huge = 3 * u64::from(u32::MAX) + 7;
        h.record_n(1_000, huge).unwrap();
        h.record_n(2_000, u64::from(u32::MAX)).unwrap();
        h.record(3_000).unwrap();
        let b = decode_buckets(&encode(&h).unwrap()).unwrap();
        assert_eq!(b.count(), h.len());
        let mut counts = Counts::default();
        counts.add_buckets(&b);
        let whole: Vec<(u64, u64)> = counts.iter().collect();
        assert_eq!(whole.len(), 3, "one bucket each: {whole:?}");
        assert_eq!(
            whole.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            [huge, u64::from(u32::MAX), 1]
        );
        assert_eq!(all(&counts.to_histogram()), all(&h));
    }

    #[test]
    fn buckets_refuse_what_decode_refuses() {
        let mut h = new_histogram();
        h.record(1_000).unwrap();
        let good = encode(&h).unwrap();
        assert!(decode_buckets(&good).is_ok());
        assert!(decode_buckets(&[]).is_err());
        assert!(decode_buckets(&good[..good.len() - 1]).is_err());
        let mut long = good.clone();
        // A million empty buckets, then a count: past the end of the range.
        long.extend_from_slice(&[0xff, 0x88, 0x7a, 2]);
        let len = u32::from_be_bytes(long[4..8].try_into().unwrap()) + 4;
        long[4..8].copy_from_slice(&len.to_be_bytes());
        assert!(decode(&long).is_err());
        assert!(decode_buckets(&long).is_err());
        let mut range = good.clone();
        range[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            decode_buckets(&range),
            Err(CodecError::RangeTooLarge(_))
        ));
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
