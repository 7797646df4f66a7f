//! The signals that end a process gracefully: SIGINT (Ctrl-C at a terminal) and SIGTERM
//! (what Kubernetes, systemd and `kill` send first). Both binaries treat them alike.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Waits for SIGINT or SIGTERM, as many times as it is called.
#[derive(Debug)]
pub struct Shutdown {
    term: Option<Signal>,
}

impl Shutdown {
    /// Installs the SIGTERM handler (SIGINT's is installed on first wait). Without a SIGTERM
    /// handler (it could not be installed), only SIGINT is awaited.
    pub fn new() -> Self {
        Self {
            term: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Resolves at the next SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        let term = async {
            let got = match &mut self.term {
                Some(t) => t.recv().await.is_some(),
                None => false,
            };
            if !got {
                // No handler, or its stream ended: only SIGINT remains.
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}
