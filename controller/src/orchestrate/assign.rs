//! Handing a phase to the agents: each agent's shard and assignment, one
//! start instant translated into each agent's clock, and handing a running
//! phase out again: a lost agent's share onto the others, a share back to an
//! agent that restarted, reconnected or resumed.

use super::phase_run::{Assigned, Underway};
use super::runner::{Orchestrator, RunError, millis};
use crate::model::{Redistribution, StepRecord};
use crate::orchestrate::clock;
use crate::orchestrate::live::LIVE;
use crate::results::rawlog::Record;
use stampede_common::proto::{
    self, LoadShape, PhaseAssignment, SessionResponse, load_shape::Shape,
    session_response::Kind as Down,
};
use stampede_common::shard::{self, ShardMap};
use stampede_plan::{Api, Phase, PhaseKind, ShardWeights};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Time allowed per agent for building and sending the assignments, which
/// leave one after another once the start instant is chosen: about three
/// times what 10,000 of them took on a busy 2-core machine (32 µs each).
const SEND_ALLOWANCE: Duration = Duration::from_micros(100);

impl Orchestrator {
    /// Estimate new agents' clocks, then send `phase` (planned as phase
    /// `index`) to every connected agent with a clock, all starting at one
    /// instant; record and announce the start.
    pub(super) async fn assign(
        &mut self,
        index: u32,
        repeat: u32,
        phase: &Phase,
        step: Option<StepRecord>,
    ) -> Result<Assigned, RunError> {
        self.estimate_clocks().await?;
        let active: Vec<String> = self
            .connected()
            .into_iter()
            .filter(|id| self.agents[id].clock.is_some())
            .collect();
        if active.is_empty() {
            return Err(RunError::NoAgents(phase.name.clone()));
        }
        // Every assignment has its own wire number, so a late report of one
        // step can never be merged into the next.
        let slot = self.next_slot;
        self.next_slot += 1;
        let weights = self.shard_weights(&active);
        let shards = ShardMap::weighted(&weights).map_err(|e| RunError::Shard(e.to_string()))?;
        let (start, start_unix) = self.start_instant(&active);
        // One wire shard for all, its index set per agent: building each
        // from the weights would cost the whole fleet per agent.
        let wire = shard::to_proto(0, &weights);
        let split = closed_loop_split(phase, &shards);
        let mut slices: BTreeMap<String, proto::Shard> = BTreeMap::new();
        for (i, id) in active.iter().enumerate() {
            let shard = (i as u32, &wire, &shards, split.as_deref());
            let Some(assignment) = self.assignment(slot, index, phase, shard, start_unix, id)
            else {
                continue;
            };
            let a = &self.agents[id];
            let msg = SessionResponse {
                kind: Some(Down::PhaseAssignment(assignment)),
            };
            if a.tx.send(Ok(msg)).await.is_ok() {
                let slice = proto::Shard {
                    index: i as u32,
                    ..wire.clone()
                };
                slices.insert(id.clone(), slice);
            }
        }
        // In assignment order: the order slices are handed out again in.
        let agents: Vec<String> = active
            .into_iter()
            .filter(|id| slices.contains_key(id))
            .collect();
        self.record(&Record::PhaseStart {
            phase: index,
            repeat,
            name: phase.name.clone(),
            start_unix_nanos: start_unix,
            window_ms: millis(self.plan.window),
            agents: agents.clone(),
            shard_weights: self.shard_weights(&agents),
            step,
        })?;
        self.progress.phase_start(phase, agents.len(), step);
        LIVE.phase(Some((index, &phase.name, phase.kind.name())));
        Ok(Assigned {
            slot,
            start,
            start_unix,
            agents,
            slices,
        })
    }

    /// The phase's start: far enough ahead for the slowest agent's
    /// assignment to arrive, in this process's clock and as Unix time.
    fn start_instant(&self, active: &[String]) -> (Instant, i64) {
        let max_rtt = active
            .iter()
            .map(|id| self.agents[id].clock.unwrap_or_default().rtt_nanos)
            .max()
            .unwrap_or(0);
        let lead = Duration::from_millis(300)
            + Duration::from_nanos(u64::try_from(max_rtt).unwrap_or(0) * 2)
            + SEND_ALLOWANCE * u32::try_from(active.len()).unwrap_or(u32::MAX);
        let start_unix =
            clock::now_unix_nanos() + i64::try_from(lead.as_nanos()).unwrap_or(i64::MAX);
        (Instant::now() + lead, start_unix)
    }

    /// The window boundary from which a share of the running phase can
    /// move: far enough ahead for the message to arrive; `None` when the
    /// phase's arrivals end before it.
    pub(super) fn next_boundary(&self, u: &Underway<'_>) -> Option<u64> {
        let window = millis(self.plan.window).max(1);
        let soon = millis(Instant::now().saturating_duration_since(u.start)) + 100;
        let from_ms = soon.div_ceil(window) * window;
        (from_ms < millis(u.phase.duration)).then_some(from_ms)
    }

    /// Split the running phase among `sharing` (in slice order) from
    /// `from_ms` on: each gets a Reshard, except `fresh`, which starts the
    /// phase anew there. Returns each agent's new slice.
    pub(super) async fn reshare(
        &mut self,
        u: &Underway<'_>,
        (sharing, fresh): (&[String], Option<&str>),
        from_ms: u64,
        sent: &mut BTreeMap<String, Vec<proto::Reshard>>,
    ) -> Result<BTreeMap<String, proto::Shard>, RunError> {
        let weights = self.shard_weights(sharing);
        ShardMap::weighted(&weights).map_err(|e| RunError::Shard(e.to_string()))?;
        let users = u.phase.users().unwrap_or(0);
        let mut slices = BTreeMap::new();
        for (i, id) in sharing.iter().enumerate() {
            let shard = shard::to_proto(i as u32, &weights);
            slices.insert(id.clone(), shard.clone());
            if fresh == Some(id.as_str()) {
                self.rejoin(u, id, &shard, from_ms).await?;
                continue;
            }
            let r = proto::Reshard {
                phase_index: u.slot,
                shard: Some(shard),
                from_ms,
                users,
            };
            sent.entry(id.clone()).or_default().push(r.clone());
            self.send(id, Down::Reshard(r)).await;
        }
        Ok(slices)
    }

    /// Agent `id` starts the running phase anew at `from_ms`, with slice
    /// `shard` (a restarted agent, or one that halted and came back).
    pub(super) async fn rejoin(
        &mut self,
        u: &Underway<'_>,
        id: &str,
        shard: &proto::Shard,
        from_ms: u64,
    ) -> Result<(), RunError> {
        let weights = if shard.weights.is_empty() {
            vec![1; shard.count as usize]
        } else {
            shard.weights.clone()
        };
        let map = ShardMap::weighted(&weights).map_err(|e| RunError::Shard(e.to_string()))?;
        let split = closed_loop_split(u.phase, &map);
        let slice = (shard.index, shard, &map, split.as_deref());
        let assignment = self.assignment(u.slot, u.index, u.phase, slice, u.start_unix, id);
        if let Some(a) = assignment {
            let a = PhaseAssignment {
                join_from_ms: from_ms,
                ..a
            };
            self.send(id, Down::PhaseAssignment(a)).await;
        }
        Ok(())
    }

    /// Record and announce a share handed on (`lost`) or taken back (`rejoined`).
    pub(super) fn record_reshare(
        &mut self,
        u: &Underway<'_>,
        (lost, rejoined): (&str, &str),
        sharing: &[String],
        from_ms: u64,
    ) -> Result<Redistribution, RunError> {
        self.record(&Record::Reshard {
            phase: u.index,
            lost: lost.to_string(),
            rejoined: rejoined.to_string(),
            agents: sharing.to_vec(),
            from_ms,
        })?;
        let (to, from_s) = (sharing.join(", "), from_ms as f64 / 1e3);
        let name = &u.phase.name;
        self.progress.line(&if rejoined.is_empty() {
            format!("agent {lost}'s share goes to {to} from {from_s:.1} s into phase {name}")
        } else {
            format!(
                "agent {rejoined} takes a share back: {to} from {from_s:.1} s into phase {name}"
            )
        });
        Ok(Redistribution {
            lost: lost.to_string(),
            rejoined: rejoined.to_string(),
            to: sharing.to_vec(),
            from_s,
        })
    }

    /// Each agent's shard weight, in `agents` order.
    fn shard_weights(&self, agents: &[String]) -> Vec<u32> {
        agents
            .iter()
            .map(|id| match self.plan.agents.shard_weights {
                ShardWeights::Equal => 1,
                ShardWeights::Cores => self.agents.get(id).map_or(1, |a| a.hello.cores.max(1)),
            })
            .collect()
    }

    /// Agent `id`'s assignment for `phase`, as shard `i` of `shards` (whose
    /// wire form, but for the index, is `wire`, and whose parts of a
    /// closed-loop request bound are `split`); `None` when its share is empty.
    fn assignment(
        &self,
        slot: u32,
        index: u32,
        phase: &Phase,
        (i, wire, shards, split): (u32, &proto::Shard, &ShardMap, Option<&[u64]>),
        start_unix: i64,
        id: &str,
    ) -> Option<PhaseAssignment> {
        let (shape, max_requests) = match phase.kind {
            PhaseKind::Constant { .. }
            | PhaseKind::Ramp { .. }
            | PhaseKind::Soak { .. }
            | PhaseKind::Stress(_) => {
                // A global bound M leaves each shard its arrivals below M.
                let share = phase.max_requests.map(|m| shards.owned_below(i, m));
                (
                    Shape::OpenLoop(crate::analysis::schedule::open_loop(
                        phase,
                        self.plan.seed,
                        index,
                    )),
                    share,
                )
            }
            PhaseKind::Replay { .. } => {
                // Sharded like any open loop.
                let share = phase.max_requests.map(|m| shards.owned_below(i, m));
                let (trace, time_scale) = phase.replayed()?;
                let replay = trace.to_proto(time_scale);
                (Shape::Replay(replay), share)
            }
            PhaseKind::Baseline | PhaseKind::Concurrency { .. } => {
                let users = phase.users().unwrap_or(1);
                let mine = shards.owned_below(i, u64::from(users));
                if mine == 0 {
                    return None;
                }
                let share = split.and_then(|s| s.get(i as usize).copied());
                (Shape::Concurrency(proto::Concurrency { users }), share)
            }
        };
        if max_requests == Some(0) {
            return None;
        }
        // Open loop: the bound is on arrival numbers, so it holds across reshards.
        let (max_requests, max_arrivals) = match shape {
            Shape::OpenLoop(_) | Shape::Replay(_) => (None, phase.max_requests),
            Shape::Concurrency(_) => (max_requests, None),
        };
        let offset = self
            .agents
            .get(id)
            .and_then(|a| a.clock)
            .unwrap_or_default()
            .offset_nanos;
        let plan = &self.plan;
        Some(PhaseAssignment {
            phase_index: slot,
            phase_name: phase.name.clone(),
            start_unix_nanos: start_unix + offset,
            duration_ms: millis(phase.duration),
            drain_ms: millis(phase.drain),
            window_ms: millis(plan.window),
            max_requests: max_requests.unwrap_or(0),
            shard: Some(proto::Shard {
                index: i,
                ..wire.clone()
            }),
            load: Some(LoadShape { shape: Some(shape) }),
            request: Some(proto::RequestTemplate {
                base_url: self.target.base_url.clone(),
                api: match plan.target.api {
                    Api::Chat => proto::Api::Chat,
                    Api::Completions => proto::Api::Completions,
                } as i32,
                model: plan.target.model.clone(),
                prompt: self.target.prompt.clone(),
                prompt_words: self.target.prompt_words.clone(),
                max_tokens: plan.request.max_tokens,
                stream: plan.request.stream,
                timeout_ms: millis(plan.request.timeout),
                prompt_tokens_estimate: plan.request.prompt_tokens,
                headers: plan.target.headers.clone().into_iter().collect(),
                api_key_env: plan.target.api_key_env.clone().unwrap_or_default(),
                http2: plan.target.http2,
                first_token_timeout_ms: millis(plan.request.first_token_timeout),
                connect_timeout_ms: millis(plan.request.connect_timeout),
                ca_pem: plan.target.ca_pem.clone().unwrap_or_default(),
                insecure_tls: plan.target.insecure_tls,
                // Seeded per phase run (repeats and stress steps included), so
                // no run of a phase resends another's prompts.
                workload: Some(stampede_plan::workload::to_proto(
                    &plan.mix_for(phase),
                    plan.seed ^ u64::from(slot).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                )),
            }),
            max_in_flight: plan.agents.max_in_flight,
            goodput: crate::analysis::verdict::goodput_bounds(phase),
            max_arrivals: max_arrivals.unwrap_or(0),
            trace_context: crate::orchestrate::spans::assignment_context(plan),
            trace_sample_ratio: plan.tracing.map_or(0.0, |t| t.sample_ratio),
            join_from_ms: 0,
            halt_after_ms: millis(plan.agents.halt_after),
            record_sample_ratio: plan.records.map_or(0.0, |r| r.sample),
            // The same numbers on every agent and on a re-run with the seed.
            record_seed: plan.seed ^ u64::from(slot).wrapping_mul(0xD1B5_4A32_D192_ED03),
            max_records_per_window: plan.records.map_or(0, |r| r.max_per_window),
            max_concurrency: phase.max_concurrency.unwrap_or(0),
            windows_per_report: plan.windows_per_report(wire.count as usize),
        })
    }
}

/// Each shard's part of a closed-loop phase's global request bound, made
/// once per assignment of the phase; `None` for other phases or no bound.
fn closed_loop_split(phase: &Phase, shards: &ShardMap) -> Option<Vec<u64>> {
    match phase.kind {
        PhaseKind::Baseline | PhaseKind::Concurrency { .. } => {
            let users = phase.users().unwrap_or(1);
            phase.max_requests.map(|m| split_bound(shards, users, m))
        }
        _ => None,
    }
}

/// A global request bound `m` of `users` closed-loop users split among the
/// shards: in proportion to each shard's users, the remainder one each to
/// the first shards that have users (a shard without is not assigned, and
/// its part would be lost). One pass over the shards.
fn split_bound(shards: &ShardMap, users: u32, m: u64) -> Vec<u64> {
    let each = shards.owned_below_each(u64::from(users));
    let part = |u: u64| m * u / u64::from(users);
    let mut left = m - each.iter().map(|&u| part(u)).sum::<u64>();
    each.iter()
        .map(|&u| {
            let extra = u64::from(u > 0 && left > 0);
            left -= extra;
            part(u) + extra
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_loop_bound_is_split_exactly_among_the_users_shards() {
        for (weights, users, m) in [
            (vec![1u32; 7], 5u32, 23u64),
            (vec![3, 1, 2], 12, 100),
            (vec![1, 1, 5], 2, 7),
            (vec![1, 5, 5], 2, 7),
            (vec![1; 10_000], 20_000, 1_000_003),
        ] {
            let shards = ShardMap::weighted(&weights).unwrap();
            let users_of = shards.owned_below_each(u64::from(users));
            let shares = split_bound(&shards, users, m);
            assert_eq!(shares.iter().sum::<u64>(), m, "{weights:?}");
            for (i, (&share, &u)) in shares.iter().zip(&users_of).enumerate() {
                let fair = m as f64 * u as f64 / f64::from(users);
                assert!(
                    (share as f64 - fair).abs() <= 1.0,
                    "shard {i}: {share} for {fair}"
                );
                // A shard with no users is not assigned: it must have no share.
                assert!(
                    u > 0 || share == 0,
                    "shard {i} has no users but {share} requests"
                );
            }
        }
    }
}
