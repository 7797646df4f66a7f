//! `controller deploy` and `controller teardown`: the agents' Kubernetes
//! objects, applied or removed.

use super::runtime::runtime;
use super::{K8sFlags, exit};
use crate::model::Status;
use crate::run::cluster::{self as command, Overrides};
use std::path::Path;
use std::process::ExitCode;

impl K8sFlags {
    /// The flags over the plan's [kubernetes] table.
    pub(super) fn overrides(
        self,
        agent_image: Option<String>,
        controller_address: Option<String>,
    ) -> Overrides {
        Overrides {
            context: self.context,
            namespace: self.namespace,
            agent_image,
            controller_address,
        }
    }
}

/// Deploy (`deploy`) or tear down.
pub fn command(plan: Option<&Path>, flags: Overrides, deploy: bool) -> ExitCode {
    let ready = command::settings(plan, &flags)
        .map_err(|e| exit::error(&e, Status::BadInput))
        .and_then(|s| Ok((s, runtime()?)));
    let (settings, runtime) = match ready {
        Ok(v) => v,
        Err(code) => return code,
    };
    // The kube client must be built inside the runtime.
    runtime.block_on(async {
        let done = if deploy {
            command::run_deploy(&settings)
                .await
                .map(|r| r.text(&settings.kubernetes))
        } else {
            command::run_teardown(&settings).await
        };
        match done {
            Ok(text) => {
                print!("{text}");
                exit::code(Status::Passed)
            }
            Err(e) => exit::error(&e, e.status()),
        }
    })
}
