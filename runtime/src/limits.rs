//! Process limits a stampede process raises for itself. Every agent holds a
//! connection to the controller, so a controller facing thousands of agents
//! needs as many file descriptors; the usual soft limit (1,024) would stop
//! it accepting agents part-way, while the hard limit is often far higher.
//! An agent holds a connection per request in flight, so it raises its own.

use rustix::process::{Resource, getrlimit, setrlimit};

/// Raise the soft limit on open files to the hard limit; returns the soft
/// limit in force afterwards (`None`: unlimited).
pub fn raise_open_files() -> Option<u64> {
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let before = limit.current;
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!("cannot raise the open-files limit: {e}");
            return before;
        }
    }
    limit.current
}

/// The soft limit on open files in force (`None`: unlimited).
pub fn open_files() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let raised = raise_open_files();
        let now = getrlimit(Resource::Nofile);
        assert_eq!(raised, now.current);
        assert_eq!(open_files(), now.current);
        assert_eq!(now.current, now.maximum);
    }
}
