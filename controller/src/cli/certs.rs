//! `controller certs`: a development CA, certificates and a join token for
//! mTLS between agents and the controller.

use super::exit;
use crate::model::Status;
use crate::orchestrate::certs::{self, CertsOptions};
use std::process::ExitCode;

/// Generate the files and say how a plan and an agent use them.
pub fn command(opts: &CertsOptions) -> ExitCode {
    match certs::run(opts) {
        Ok(files) => {
            for f in files {
                println!("wrote {}", f.display());
            }
            println!(
                "plan: [agents] tls = {{ ca = \"ca.pem\", cert = \"controller.pem\", key = \"controller.key\" }}, join_token_file = \"join-token\" (paths relative to the plan)"
            );
            println!(
                "agent: --ca ca.pem --cert agent.pem --key agent.key --join-token-file join-token"
            );
            exit::code(Status::Passed)
        }
        Err(e) => exit::error(&e, e.status()),
    }
}
