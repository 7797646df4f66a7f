//! The KV cache: capacity in blocks, prefix caching by block hash, LRU eviction.
//!
//! Saturation in a real server comes as much from KV memory as from batch slots, and cache
//! tests need real hit rates, so this follows vLLM's design closely enough to predict: a
//! prompt's full blocks are identified by a hash chain over their token ids (block `i`'s hash
//! covers blocks `0..=i`), a new request reuses the longest cached chain prefix, blocks no
//! running request holds stay cached until evicted least-recently-freed first. Only block
//! *counts* are tracked, never contents.

use std::collections::{BTreeMap, HashMap};

/// Hashes of the full blocks of `ids`, each chained to its predecessor.
pub(crate) fn block_hashes(ids: &[u32], block_size: u32) -> Vec<u64> {
    let bs = block_size.max(1) as usize;
    let mut parent = 0xCBF2_9CE4_8422_2325u64;
    ids.chunks_exact(bs)
        .map(|block| {
            let mut h = parent;
            for &id in block {
                h = (h ^ u64::from(id)).wrapping_mul(0x0000_0100_0000_01B3);
            }
            // Finalize (SplitMix64) so chained hashes do not correlate.
            h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            h ^= h >> 31;
            parent = h;
            h
        })
        .collect()
}

/// Blocks needed to hold `tokens` tokens.
pub(crate) fn blocks_for(tokens: u64, block_size: u32) -> u64 {
    tokens.div_ceil(u64::from(block_size.max(1))).max(1)
}

/// One cached (hashed) block.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Running requests holding it.
    refs: u32,
    /// Its key in the LRU while `refs == 0`.
    tick: u64,
}

/// The blocks one running request holds.
#[derive(Debug, Default)]
pub(crate) struct Allocation {
    /// Hashed (shareable) prompt blocks, in prompt order.
    hashes: Vec<u64>,
    /// Unshared blocks: the partial last prompt block and the output blocks.
    private: u64,
    /// Prompt tokens served from the cache.
    pub hit_tokens: u64,
}

/// Block accounting of the whole cache.
#[derive(Debug)]
pub(crate) struct KvCache {
    block_size: u32,
    total: u64,
    prefix_caching: bool,
    /// Unshared blocks held by running requests.
    private: u64,
    /// Hashed blocks, held or evictable.
    cached: HashMap<u64, Entry>,
    /// Evictable hashed blocks (`refs == 0`), least recently freed first.
    lru: BTreeMap<u64, u64>,
    tick: u64,
}

impl KvCache {
    /// An empty cache of `total` blocks of `block_size` tokens.
    pub(crate) fn new(block_size: u32, total: u32, prefix_caching: bool) -> Self {
        Self {
            block_size: block_size.max(1),
            total: u64::from(total),
            prefix_caching,
            private: 0,
            cached: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
        }
    }

    /// Capacity in blocks.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Blocks held by running requests (cached-but-free blocks do not count, as in vLLM).
    pub(crate) fn used(&self) -> u64 {
        self.private + (self.cached.len() - self.lru.len()) as u64
    }

    /// Whether prefix caching is on.
    pub(crate) fn prefix_caching(&self) -> bool {
        self.prefix_caching
    }

    /// Allocates the blocks of a request with `prompt_len` prompt tokens whose full blocks
    /// hash to `hashes` and `total_len` tokens in all (prompt + output), or `None` if they
    /// do not fit now. Like vLLM, at most `prompt_len - 1` tokens can hit: the last prompt
    /// token is always computed.
    pub(crate) fn allocate(
        &mut self,
        hashes: &[u64],
        prompt_len: u64,
        total_len: u64,
    ) -> Option<Allocation> {
        let hashes = if self.prefix_caching { hashes } else { &[] };
        let needed = blocks_for(total_len, self.block_size);
        let bs = u64::from(self.block_size);
        let max_hit_blocks = (prompt_len.saturating_sub(1) / bs) as usize;
        // Leading blocks present in the cache (the hit), and later ones present by chance.
        let hit = hashes
            .iter()
            .take(max_hit_blocks)
            .take_while(|h| self.cached.contains_key(h))
            .count();
        let mut reused = 0u64;
        let mut reused_evictable = 0u64;
        for h in hashes {
            if let Some(e) = self.cached.get(h) {
                reused += 1;
                if e.refs == 0 {
                    reused_evictable += 1;
                }
            }
        }
        let fresh = needed.saturating_sub(reused);
        let free = self
            .total
            .saturating_sub(self.private + self.cached.len() as u64);
        let evictable = self.lru.len() as u64 - reused_evictable;
        if fresh > free + evictable {
            return None;
        }
        // Take references first so eviction cannot remove a block about to be reused.
        for h in hashes {
            if let Some(e) = self.cached.get_mut(h) {
                if e.refs == 0 {
                    self.lru.remove(&e.tick);
                }
                e.refs += 1;
            }
        }
        let new_hashed = hashes.len() as u64 - reused;
        let private = needed.saturating_sub(hashes.len() as u64);
        let mut to_evict = (new_hashed + private).saturating_sub(free);
        while to_evict > 0 {
            let Some((_, h)) = self.lru.pop_first() else {
                break;
            };
            self.cached.remove(&h);
            to_evict -= 1;
        }
        for h in hashes {
            self.cached.entry(*h).or_insert(Entry { refs: 1, tick: 0 });
        }
        self.private += private;
        Some(Allocation {
            hashes: hashes.to_vec(),
            private,
            hit_tokens: hit as u64 * bs,
        })
    }

    /// Returns a finished (or cancelled) request's blocks. Its hashed blocks stay cached,
    /// the last block of the chain becoming the first to be evicted.
    pub(crate) fn release(&mut self, alloc: Allocation) {
        self.private = self.private.saturating_sub(alloc.private);
        for h in alloc.hashes.iter().rev() {
            if let Some(e) = self.cached.get_mut(h) {
                e.refs = e.refs.saturating_sub(1);
                if e.refs == 0 {
                    self.tick += 1;
                    e.tick = self.tick;
                    self.lru.insert(self.tick, *h);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(range: std::ops::Range<u32>) -> Vec<u32> {
        range.collect()
    }

    #[test]
    fn hashes_chain_over_full_blocks() {
        let a = block_hashes(&ids(0..40), 16);
        assert_eq!(a.len(), 2);
        let mut other = ids(0..40);
        other[3] = 999;
        let b = block_hashes(&other, 16);
        // A change in block 0 changes every later hash.
        assert_ne!(a[0], b[0]);
        assert_ne!(a[1], b[1]);
        assert_eq!(block_hashes(&ids(0..32), 16), a);
    }

    #[test]
    fn shared_prefix_hits_and_usage() {
        let mut kv = KvCache::new(4, 100, true);
        let p1: Vec<u32> = (0..10).collect();
        let h1 = block_hashes(&p1, 4);
        let a1 = kv.allocate(&h1, 10, 14).expect("fits");
        assert_eq!(a1.hit_tokens, 0);
        assert_eq!(kv.used(), 4); // ceil(14/4)
        let mut p2 = p1.clone();
        p2[9] = 77; // same first 2 blocks
        let a2 = kv.allocate(&block_hashes(&p2, 4), 10, 14).expect("fits");
        assert_eq!(a2.hit_tokens, 8);
        assert_eq!(kv.used(), 6); // 2 shared + 2 private each
        kv.release(a1);
        kv.release(a2);
        assert_eq!(kv.used(), 0);
        // Block-aligned prompt fully cached: the last block is recomputed.
        let p3: Vec<u32> = (0..8).collect();
        let a3 = kv.allocate(&block_hashes(&p3, 4), 8, 9).expect("fits");
        assert_eq!(a3.hit_tokens, 4);
    }

    #[test]
    fn full_cache_refuses_then_evicts_lru() {
        let mut kv = KvCache::new(4, 4, true);
        let a = kv
            .allocate(&block_hashes(&ids(0..8), 4), 8, 16)
            .expect("fits");
        assert!(
            kv.allocate(&block_hashes(&ids(100..108), 4), 8, 8)
                .is_none()
        );
        kv.release(a);
        assert_eq!(kv.used(), 0);
        let b = kv
            .allocate(&block_hashes(&ids(100..108), 4), 8, 16)
            .expect("evicts");
        assert_eq!(b.hit_tokens, 0);
        assert_eq!(kv.used(), 4);
        kv.release(b);
        // The old chain was evicted: no hit.
        let c = kv
            .allocate(&block_hashes(&ids(0..8), 4), 8, 8)
            .expect("fits");
        assert_eq!(c.hit_tokens, 0);
    }

    #[test]
    fn no_prefix_caching_means_no_hits() {
        let mut kv = KvCache::new(4, 100, false);
        let h = block_hashes(&ids(0..20), 4);
        let a = kv.allocate(&h, 20, 24).expect("fits");
        let b = kv.allocate(&h, 20, 24).expect("fits");
        assert_eq!((a.hit_tokens, b.hit_tokens), (0, 0));
        assert_eq!(kv.used(), 12);
        assert!(!kv.prefix_caching());
    }
}
