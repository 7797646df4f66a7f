//! Weighted shards: which agent owns which arrival (or closed-loop user).
//!
//! Agents differ in size (a 4-core and a 32-core node in one DaemonSet), so a
//! phase is split in proportion to each agent's weight (its cores by default)
//! rather than evenly. Every agent builds the same [`ShardMap`] from the
//! weights in its assignment, so ownership needs no coordination:
//!
//! - The weights are reduced by their greatest common divisor to `w_i`, with
//!   `W = Σ w_i` slots per cycle.
//! - Shard `i` gets `w_i` slots per cycle, its `j`-th at virtual time
//!   `(j + ½) / w_i` in [0, 1). All slots of all shards, sorted by virtual time
//!   (ties by shard index), form the cycle.
//! - Number `k` (an arrival, a user) belongs to the shard in slot `k mod W`.
//!
//! So the shards partition the numbers exactly (their union is the unsharded
//! sequence, every number once), shard `i` owns exactly `w_i` of every `W`
//! consecutive numbers, and in any prefix its count is within one of its
//! share: a shard's arrivals are spread through the phase, not bunched.
//! Equal weights give the plain `k mod n`.

use crate::proto;

/// Most slots per cycle (after reducing the weights by their gcd).
pub const MAX_SLOTS: u64 = 1 << 20;

/// A shard description that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid shard: {0}")]
pub struct ShardError(pub String);

/// Which shard owns each number, for one set of weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    /// Reduced weight of every shard.
    weights: Vec<u64>,
    /// The cycle: the owning shard of each slot.
    slots: Vec<u32>,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl ShardMap {
    /// `n` shards of equal weight: number `k` belongs to shard `k mod n`.
    pub fn equal(n: u32) -> Result<Self, ShardError> {
        Self::weighted(&vec![1; n as usize])
    }

    /// Shards with these relative weights (one per shard, each at least 1).
    pub fn weighted(weights: &[u32]) -> Result<Self, ShardError> {
        if weights.is_empty() {
            return Err(ShardError("no shards".into()));
        }
        if let Some(i) = weights.iter().position(|&w| w == 0) {
            return Err(ShardError(format!("shard {i} has weight 0")));
        }
        let g = weights.iter().fold(0u64, |g, &w| gcd(g, u64::from(w)));
        let weights: Vec<u64> = weights.iter().map(|&w| u64::from(w) / g).collect();
        let total: u64 = weights.iter().sum();
        if total > MAX_SLOTS {
            return Err(ShardError(format!(
                "weights need {total} slots per cycle (at most {MAX_SLOTS}); use smaller or more even weights"
            )));
        }
        // (shard, j): virtual time (2j + 1) / (2 w_shard); compare by cross-multiplying.
        let mut order: Vec<(u32, u64)> = weights
            .iter()
            .enumerate()
            .flat_map(|(i, &w)| (0..w).map(move |j| (i as u32, j)))
            .collect();
        order.sort_by(|&(a, ja), &(b, jb)| {
            let lhs = u128::from(2 * ja + 1) * u128::from(weights[b as usize]);
            let rhs = u128::from(2 * jb + 1) * u128::from(weights[a as usize]);
            lhs.cmp(&rhs).then(a.cmp(&b))
        });
        let slots = order.into_iter().map(|(i, _)| i).collect();
        Ok(Self { weights, slots })
    }

    /// The map and this agent's index from an assignment's shard (empty
    /// `weights` means equal weights).
    pub fn from_proto(shard: &proto::Shard) -> Result<(Self, u32), ShardError> {
        if shard.count == 0 || shard.index >= shard.count {
            return Err(ShardError(format!(
                "shard {} of {} (index must be below count)",
                shard.index, shard.count
            )));
        }
        let map = if shard.weights.is_empty() {
            Self::equal(shard.count)?
        } else if shard.weights.len() != shard.count as usize {
            return Err(ShardError(format!(
                "{} weights for {} shards",
                shard.weights.len(),
                shard.count
            )));
        } else {
            Self::weighted(&shard.weights)?
        };
        Ok((map, shard.index))
    }

    /// Number of shards.
    pub fn count(&self) -> u32 {
        self.weights.len() as u32
    }

    /// The shard that owns number `k`.
    pub fn owner(&self, k: u64) -> u32 {
        self.slots[(k % self.slots.len() as u64) as usize]
    }

    /// How many of the numbers `0..m` shard `index` owns.
    pub fn owned_below(&self, index: u32, m: u64) -> u64 {
        let cycle = self.slots.len() as u64;
        let full = m / cycle * self.weights.get(index as usize).copied().unwrap_or(0);
        let rest = self.slots[..(m % cycle) as usize]
            .iter()
            .filter(|&&s| s == index)
            .count() as u64;
        full + rest
    }

    /// [`ShardMap::owned_below`] for every shard at once, in one pass over
    /// the cycle rather than one per shard.
    pub fn owned_below_each(&self, m: u64) -> Vec<u64> {
        let cycle = self.slots.len() as u64;
        let mut owned: Vec<u64> = self.weights.iter().map(|w| m / cycle * w).collect();
        for &s in &self.slots[..(m % cycle) as usize] {
            owned[s as usize] += 1;
        }
        owned
    }
}

/// The wire form of shard `index` among shards of these weights: no weights
/// on the wire when they are all equal (the plain `k mod n` every agent knows).
pub fn to_proto(index: u32, weights: &[u32]) -> proto::Shard {
    let equal = weights.windows(2).all(|w| w[0] == w[1]);
    proto::Shard {
        index,
        count: weights.len() as u32,
        weights: if equal { Vec::new() } else { weights.to_vec() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_are_k_mod_n() {
        for n in 1..7u32 {
            let m = ShardMap::equal(n).unwrap();
            for k in 0..100u64 {
                assert_eq!(u64::from(m.owner(k)), k % u64::from(n));
            }
            // Scaled equal weights reduce to the same map.
            assert_eq!(ShardMap::weighted(&vec![8; n as usize]).unwrap(), m);
        }
    }

    #[test]
    fn weighted_shards_partition_exactly_in_proportion_and_evenly() {
        let weights = [4u32, 8, 2, 6, 1];
        let map = ShardMap::weighted(&weights).unwrap();
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut counts = vec![0u64; weights.len()];
        for k in 0..10_000u64 {
            counts[map.owner(k) as usize] += 1;
            let seen = k + 1;
            for (i, &w) in weights.iter().enumerate() {
                // Every prefix holds each shard's share to within one.
                let share = seen as f64 * f64::from(w) / total as f64;
                assert!(
                    (counts[i] as f64 - share).abs() < 1.0 + 1e-9,
                    "prefix {seen}: shard {i} has {} for share {share}",
                    counts[i]
                );
                assert_eq!(map.owned_below(i as u32, seen), counts[i]);
            }
            assert_eq!(map.owned_below_each(seen), counts);
        }
        // Exactly w_i of every W consecutive numbers, from any start.
        for start in [0u64, 7, 123] {
            let mut c = vec![0u64; weights.len()];
            for k in start..start + total {
                c[map.owner(k) as usize] += 1;
            }
            let want: Vec<u64> = weights.iter().map(|&w| u64::from(w)).collect();
            assert_eq!(c, want);
        }
    }

    #[test]
    fn bad_weights_are_refused_by_name() {
        assert!(ShardMap::weighted(&[]).is_err());
        let e = ShardMap::weighted(&[2, 0, 1]).unwrap_err();
        assert!(e.to_string().contains("shard 1 has weight 0"), "{e}");
        let e = ShardMap::weighted(&[1 << 20, 1]).unwrap_err();
        assert!(e.to_string().contains("slots per cycle"), "{e}");
        let bad = |index, count, weights: Vec<u32>| {
            ShardMap::from_proto(&proto::Shard {
                index,
                count,
                weights,
            })
            .unwrap_err()
            .to_string()
        };
        assert!(bad(2, 2, vec![]).contains("shard 2 of 2"));
        assert!(bad(0, 0, vec![]).contains("shard 0 of 0"));
        assert!(bad(0, 3, vec![1, 2]).contains("2 weights for 3 shards"));
    }

    #[test]
    fn wire_form_omits_equal_weights() {
        assert!(to_proto(1, &[4, 4, 4]).weights.is_empty());
        assert_eq!(to_proto(1, &[4, 8]).weights, vec![4, 8]);
        let (map, i) = ShardMap::from_proto(&to_proto(1, &[2, 6])).unwrap();
        assert_eq!((i, map.count()), (1, 2));
        assert_eq!(map.owned_below(1, 8), 6);
    }
}
