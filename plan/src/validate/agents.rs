//! `[agents]`: where the agents come from (local or remote, how many, the
//! controller's listen address) and the security of their gRPC endpoint.

use super::{Ctx, MISSING};
use crate::duration::shown;
use crate::{AgentMode, Agents, PlanError, RawAgents, RawPlan, ShardWeights};
use std::time::Duration;

/// Largest number of agents a plan may ask for.
const MAX_AGENTS: u32 = 10_000;

impl RawPlan {
    /// `k8s_deploy`: `kubernetes.deploy = true`, so the agents are remote,
    /// `agents.remote` is the fewest eligible nodes accepted (default 1), and
    /// the controller listens on every interface by default.
    pub(super) fn validate_agents(
        &self,
        cx: &Ctx<'_>,
        k8s_deploy: bool,
    ) -> Result<Agents, PlanError> {
        let a = &self.agents;
        if let (true, Some(n)) = (k8s_deploy, a.local) {
            return Err(cx.invalid(
                "agents.local",
                n,
                "`kubernetes.deploy = true` deploys remote agents; remove `agents.local`",
            ));
        }
        if k8s_deploy && a.tls.is_none() {
            return Err(cx.invalid(
                "agents.tls",
                MISSING,
                "`kubernetes.deploy = true` needs mTLS: deployed agents dial the controller over https with the files of `kubernetes.tls_secret`",
            ));
        }
        let (mode, count, key) = match (a.local, a.remote) {
            (None, None) if k8s_deploy => (AgentMode::Remote, 1, "agents.remote"),
            (Some(_), Some(_)) => {
                return Err(cx.invalid(
                    "agents.remote",
                    a.remote.unwrap_or_default(),
                    "give either `agents.local` or `agents.remote`, not both",
                ));
            }
            (None, Some(n)) => (AgentMode::Remote, n, "agents.remote"),
            (Some(n), None) => (AgentMode::Local, n, "agents.local"),
            (None, None) => (AgentMode::Local, 1, "agents.local"),
        };
        if count == 0 || count > MAX_AGENTS {
            return Err(cx.invalid(key, count, format!("must be between 1 and {MAX_AGENTS}")));
        }
        let default_listen = match mode {
            AgentMode::Local => "127.0.0.1:0",
            AgentMode::Remote if k8s_deploy => "0.0.0.0:7600",
            AgentMode::Remote => "127.0.0.1:7600",
        };
        let listen = cx.addr(
            "agents.listen",
            a.listen.as_deref().unwrap_or(default_listen),
        )?;
        let join_timeout = cx.positive(
            "agents.join_timeout",
            a.join_timeout.as_ref(),
            Duration::from_secs(60),
        )?;
        let max_in_flight = a.max_in_flight.unwrap_or(10_000);
        if max_in_flight == 0 {
            return Err(cx.invalid("agents.max_in_flight", 0, "must be at least 1"));
        }
        let (reconnect_grace, halt_after) = grace_and_halt(cx, a)?;
        let shard_weights = match a.shard_weights.as_deref() {
            None | Some("cores") => ShardWeights::Cores,
            Some("equal") => ShardWeights::Equal,
            Some(other) => {
                return Err(cx.invalid(
                    "agents.shard_weights",
                    format!("{other:?}"),
                    "must be \"cores\" or \"equal\"",
                ));
            }
        };
        Ok(Agents {
            mode,
            count,
            listen,
            join_timeout,
            max_in_flight,
            reconnect_grace,
            halt_after,
            security: crate::security::validate(
                cx.path,
                crate::security::RawSecurity {
                    tls: a.tls.as_ref(),
                    join_token_env: a.join_token_env.as_deref(),
                    join_token_file: a.join_token_file.as_deref(),
                    allow_plaintext: a.allow_plaintext,
                    remote: mode == AgentMode::Remote,
                },
            )?,
            shard_weights,
        })
    }
}

/// Default `agents.reconnect_grace`: a lost agent's share moves on after it.
pub const DEFAULT_RECONNECT_GRACE: Duration = Duration::from_secs(10);
/// Default `agents.halt_after` (when `reconnect_grace` is not shorter).
pub const DEFAULT_HALT_AFTER: Duration = Duration::from_secs(5);

/// `agents.reconnect_grace` and `agents.halt_after`: an agent cut off from
/// the controller must stop sending before its share is handed on, or the
/// target gets that share twice.
fn grace_and_halt(cx: &Ctx<'_>, a: &RawAgents) -> Result<(Duration, Duration), PlanError> {
    let grace = cx.positive(
        "agents.reconnect_grace",
        a.reconnect_grace.as_ref(),
        DEFAULT_RECONNECT_GRACE,
    )?;
    let Some(written) = &a.halt_after else {
        return Ok((grace, DEFAULT_HALT_AFTER.min(grace)));
    };
    let halt = cx.positive("agents.halt_after", Some(written), DEFAULT_HALT_AFTER)?;
    if halt > grace {
        let grace_shown = shown(a.reconnect_grace.as_ref(), grace);
        return Err(cx.invalid(
            "agents.halt_after",
            written.shown(),
            format!(
                "must not exceed agents.reconnect_grace ({grace_shown}): a cut-off agent \
                 would keep sending after its share was handed on"
            ),
        ));
    }
    Ok((grace, halt))
}
