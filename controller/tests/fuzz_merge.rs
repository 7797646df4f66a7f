//! Property tests of window-report decoding and merging: any report — from
//! arbitrary protobuf bytes, or structured with arbitrary metrics, histogram
//! bytes, counters and tallies — is merged or rejected with a reason, never
//! a panic, and a rejected report leaves the totals untouched.

use proptest::prelude::*;
use prost::Message;
use stampede_common::histogram::{encode, new_histogram};
use stampede_common::proto::{self, metric_histogram::Encoding};
use stampede_controller::analysis::merge::{Offered, PhaseAccumulator, decode};

fn hist_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(1u64..10_000_000, 0..20).prop_map(|vs| {
            let mut h = new_histogram();
            for v in vs {
                h.record(v).unwrap();
            }
            encode(&h).unwrap()
        }),
        proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

fn report() -> impl Strategy<Value = proto::WindowReport> {
    let histogram = (
        prop_oneof![0i32..8, any::<i32>()],
        prop::option::of(hist_bytes()),
    )
        .prop_map(|(metric, bytes)| proto::MetricHistogram {
            metric,
            encoding: bytes.map(Encoding::HdrV2),
        });
    let counters = (
        prop_oneof![0u64..100, any::<u64>()],
        prop_oneof![0u64..100, any::<u64>()],
        prop_oneof![0u64..100, any::<u64>()],
    );
    let tally = ("[a-z_:0-9]{0,12}", prop_oneof![0u64..100, any::<u64>()])
        .prop_map(|(class, count)| proto::ErrorTally { class, count });
    (
        0u64..8,
        prop_oneof![0u32..4, any::<u32>()],
        proptest::collection::vec(histogram, 0..8),
        counters,
        proptest::collection::vec(tally, 0..4),
        any::<u64>(),
    )
        .prop_map(
            |(sequence, window_index, histograms, (sent, ok, failed), errors, cpu)| {
                proto::WindowReport {
                    sequence,
                    window_index,
                    histograms,
                    counters: Some(proto::Counters {
                        sent,
                        ok,
                        failed,
                        ..Default::default()
                    }),
                    errors,
                    agent_cpu_micros: cpu,
                    ..Default::default()
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn structured_reports_merge_or_are_rejected(reports in proptest::collection::vec(report(), 1..6)) {
        let mut acc = PhaseAccumulator::default();
        for r in &reports {
            let before = acc.total.counters;
            match acc.offer("a", r) {
                Offered::Merged(i, _) => prop_assert_eq!(i, r.window_index),
                Offered::Rejected(e) => {
                    prop_assert!(!e.to_string().is_empty());
                    prop_assert_eq!(acc.total.counters, before);
                }
                Offered::Duplicate => prop_assert_eq!(acc.total.counters, before),
            }
        }
    }

    #[test]
    fn arbitrary_bytes_decode_or_fail(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(r) = proto::WindowReport::decode(bytes.as_slice()) {
            let _ = decode(&r);
            let mut acc = PhaseAccumulator::default();
            let _ = acc.offer("a", &r);
        }
    }
}
