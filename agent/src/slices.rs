//! This agent's slices of a running open-loop phase over time: the one it
//! was assigned, then one per reshard, each from a window boundary on.
//! An arrival belongs to the slice in force at its intended time, and so
//! does this agent's part of a concurrency cap.

use stampede_common::proto;
use stampede_common::shard::ShardMap;
use std::sync::Arc;
use std::time::Duration;

/// One slice: from (seconds since the phase start), shard map and this
/// agent's index in it; no map before an agent that joined late.
type Slice = (f64, Option<Arc<ShardMap>>, u32);

/// This agent's slices of a phase over time: the assigned one (after
/// nothing, when it joined a running phase), then one per reshard.
pub(crate) struct Slices {
    /// The assigned slices, by `from`.
    assigned: Vec<Slice>,
    /// Assigned and resharded slices, by `from`.
    slices: Vec<Slice>,
}

impl Slices {
    pub(crate) fn new((map, index): (Arc<ShardMap>, u32), join_from: Duration) -> Self {
        let mut assigned = vec![(0.0, None, 0)];
        assigned.push((join_from.as_secs_f64(), Some(map), index));
        if join_from.is_zero() {
            assigned.remove(0);
        }
        Self {
            slices: assigned.clone(),
            assigned,
        }
    }

    /// Take every reshard of `phase` (the watched list holds all of them).
    pub(crate) fn update(&mut self, reshards: &[proto::Reshard], phase: u32) {
        let mut slices = self.assigned.clone();
        for r in reshards.iter().filter(|r| r.phase_index == phase) {
            match ShardMap::from_proto(&r.shard.clone().unwrap_or_default()) {
                Ok((map, index)) => {
                    slices.push((r.from_ms as f64 / 1e3, Some(Arc::new(map)), index));
                }
                Err(e) => tracing::warn!("reshard ignored: {e}"),
            }
        }
        slices.sort_by(|a, b| a.0.total_cmp(&b.0));
        self.slices = slices;
    }

    /// The slice in force `at` seconds into the phase.
    fn at(&self, at: f64) -> &Slice {
        self.slices
            .iter()
            .rev()
            .find(|s| s.0 <= at)
            .unwrap_or(&self.slices[0])
    }

    /// Whether arrival `k`, intended `at` seconds into the phase, is this agent's.
    pub(crate) fn owns(&self, k: u64, at: f64) -> bool {
        let (_, map, index) = self.at(at);
        map.as_ref().is_some_and(|m| m.owner(k) == *index)
    }

    /// This agent's part, `at` seconds into the phase, of a cluster-wide
    /// concurrency cap of `total` (at least the number of agents): one slot
    /// per agent, and the rest split by the shard map like users, so the
    /// parts of all agents sum to `total`.
    pub(crate) fn cap_part(&self, at: f64, total: u32) -> u32 {
        let (_, map, index) = self.at(at);
        map.as_ref().map_or(0, |m| {
            let rest = u64::from(total.saturating_sub(m.count()));
            1 + u32::try_from(m.owned_below(*index, rest)).unwrap_or(u32::MAX - 1)
        })
    }
}
