//! The process's descriptor limit: raised to the hard limit at start, since every connection
//! holds one, and read to bound `max_connections`.

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and logs both.
pub(super) fn raise_limit() {
    #[cfg(unix)]
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            match rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard) {
                Ok(()) => tracing::info!(
                    was = soft,
                    soft = hard,
                    hard,
                    "raised the open file descriptor limit to the hard limit"
                ),
                Err(error) => tracing::warn!(
                    soft,
                    hard,
                    %error,
                    "cannot raise the open file descriptor limit; max_connections is bounded by it"
                ),
            }
        }
        Ok((soft, hard)) => tracing::info!(soft, hard, "open file descriptor limit"),
        Err(error) => tracing::warn!(%error, "cannot read the open file descriptor limit"),
    }
}

/// The soft `RLIMIT_NOFILE`, when it can be read and is finite.
pub(super) fn soft_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::getrlimit(rlimit::Resource::NOFILE)
            .ok()
            .map(|(soft, _)| soft)
            .filter(|&soft| soft != rlimit::INFINITY)
    }
    #[cfg(not(unix))]
    {
        None
    }
}
