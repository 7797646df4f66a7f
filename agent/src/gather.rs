//! Windows gathered into one message for a large fleet.
//!
//! Every message costs the controller about the same to receive and
//! acknowledge, however many windows it carries (about 12 µs in
//! `controller_scale`, on top of each window's merge): at 10,000 agents with
//! 1 s windows, an eighth of a core for the messages alone. The controller asks each
//! agent to gather `windows_per_report` windows per message
//! (`PhaseAssignment.windows_per_report`). Windows keep their length and
//! their numbers, so the results are the same; they only reach the
//! controller later. Each agent sends at its own point of the cycle (from its
//! random incarnation), so a fleet that started together does not send
//! together; whatever is gathered goes out before the phase's `PhaseDone`.

use stampede_common::MAX_MESSAGE_BYTES;
use stampede_common::proto::{self, session_request::Kind as Up};

/// Gathered windows are sent early once they encode to this many bytes
/// (windows with many per-request records are large).
const MAX_GATHERED_BYTES: usize = MAX_MESSAGE_BYTES / 4;

/// The windows waiting to be sent together.
#[derive(Debug, Default)]
pub struct Gather {
    /// Windows per message (1: each window alone).
    every: u32,
    /// This agent's point in the cycle, in `0..every`.
    offset: u32,
    windows: Vec<proto::WindowReport>,
    bytes: usize,
}

impl Gather {
    /// Gather `every` windows per message from now on (0 or 1: none);
    /// `spread` (any number fixed for the process) places this agent's
    /// sending point in the cycle.
    pub fn start(&mut self, every: u32, spread: u64) {
        self.every = every.max(1);
        self.offset = (spread % u64::from(self.every)) as u32;
    }

    /// Windows per message.
    pub fn every(&self) -> u32 {
        self.every.max(1)
    }

    /// Take a closed window; returns the message to send now, if any.
    pub fn push(&mut self, w: proto::WindowReport) -> Option<Up> {
        let every = self.every();
        if every == 1 {
            return Some(Up::WindowReport(w));
        }
        let point = (w.window_index % every + self.offset) % every;
        self.bytes += prost::Message::encoded_len(&w);
        self.windows.push(w);
        let due = point == every - 1
            || self.windows.len() >= every as usize
            || self.bytes >= MAX_GATHERED_BYTES;
        if due { self.flush() } else { None }
    }

    /// Everything gathered, as one message (`None` when nothing is).
    pub fn flush(&mut self) -> Option<Up> {
        self.bytes = 0;
        match self.windows.len() {
            0 => None,
            1 => self.windows.pop().map(Up::WindowReport),
            _ => Some(Up::WindowReports(proto::WindowReports {
                reports: std::mem::take(&mut self.windows),
            })),
        }
    }

    /// Forget what is gathered (it is resent from the unacknowledged ones).
    pub fn clear(&mut self) {
        self.windows.clear();
        self.bytes = 0;
    }

    /// `windows` as the messages that carry them: `every` per message.
    pub fn messages(&self, windows: impl Iterator<Item = proto::WindowReport>) -> Vec<Up> {
        let mut out = Vec::new();
        let mut group = Gather {
            every: self.every(),
            ..Gather::default()
        };
        for w in windows {
            group.windows.push(w);
            if group.windows.len() >= group.every as usize {
                out.extend(group.flush());
            }
        }
        out.extend(group.flush());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(i: u32) -> proto::WindowReport {
        proto::WindowReport {
            sequence: u64::from(i) + 1,
            window_index: i,
            ..Default::default()
        }
    }

    /// The window indices each message carries.
    fn indices(m: &Up) -> Vec<u32> {
        match m {
            Up::WindowReport(w) => vec![w.window_index],
            Up::WindowReports(b) => b.reports.iter().map(|w| w.window_index).collect(),
            _ => panic!("not a window message: {m:?}"),
        }
    }

    #[test]
    fn one_window_per_message_unless_asked() {
        let mut g = Gather::default();
        for every in [0, 1] {
            g.start(every, 7);
            assert_eq!(g.push(window(3)).as_ref().map(indices), Some(vec![3]));
            assert!(g.flush().is_none());
        }
    }

    #[test]
    fn windows_go_in_groups_at_the_agents_point_of_the_cycle() {
        let mut g = Gather::default();
        g.start(4, 5); // offset 1: sends after windows 2, 6, 10, …
        let sent: Vec<Vec<u32>> = (0..11)
            .filter_map(|i| g.push(window(i)))
            .map(|m| indices(&m))
            .collect();
        assert_eq!(
            sent,
            vec![vec![0, 1, 2], vec![3, 4, 5, 6], vec![7, 8, 9, 10]]
        );
        assert!(g.flush().is_none());
        g.push(window(11));
        g.push(window(12));
        assert_eq!(g.flush().as_ref().map(indices), Some(vec![11, 12]));
    }

    #[test]
    fn agents_with_other_offsets_send_at_other_windows() {
        let mut first_sends = std::collections::BTreeSet::new();
        for spread in 0..10 {
            let mut g = Gather::default();
            g.start(10, spread);
            let first = (0..10).find(|&i| g.push(window(i)).is_some());
            first_sends.insert(first);
        }
        assert_eq!(first_sends.len(), 10, "{first_sends:?}");
    }

    #[test]
    fn large_windows_are_sent_before_the_group_is_full() {
        let mut g = Gather::default();
        g.start(60, 0);
        let big = proto::WindowReport {
            records: vec![
                proto::RequestRecord {
                    error_class: "x".repeat(1024),
                    ..Default::default()
                };
                MAX_GATHERED_BYTES / 1024 / 2
            ],
            ..window(0)
        };
        assert!(g.push(big.clone()).is_none());
        let sent = g.push(proto::WindowReport {
            window_index: 1,
            ..big
        });
        assert_eq!(sent.as_ref().map(indices), Some(vec![0, 1]));
    }

    #[test]
    fn a_backlog_is_resent_in_groups() {
        let mut g = Gather::default();
        g.start(3, 0);
        let sent: Vec<Vec<u32>> = g.messages((0..7).map(window)).iter().map(indices).collect();
        assert_eq!(sent, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
    }
}
