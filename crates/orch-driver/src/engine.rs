//! Calls to the Docker engine, each bounded in time: an engine that hangs becomes an error
//! naming the call, never a stuck agent or `orch up`. Shared by the Docker driver and by
//! provisioning (which removes a cluster's containers and runs the docker provider).

use std::future::Future;
use std::time::Duration;

/// A Docker engine call that failed or took too long.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine answered with an error.
    #[error("Docker: {what}")]
    Call {
        /// The call.
        what: String,
        /// The engine's error.
        source: bollard::errors::Error,
    },
    /// The engine did not answer in time.
    #[error("Docker: {what} took longer than {limit:?}")]
    Timeout {
        /// The call.
        what: String,
        /// The bound.
        limit: Duration,
    },
}

/// Runs one engine call, bounded by `limit`; `what` names the call in the error.
pub async fn bounded<T>(
    what: &str,
    limit: Duration,
    call: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, EngineError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(EngineError::Call {
            what: what.to_owned(),
            source,
        }),
        Err(_) => Err(EngineError::Timeout {
            what: what.to_owned(),
            limit,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_call_that_hangs_is_a_timeout_naming_it() {
        let hang = std::future::pending::<Result<(), bollard::errors::Error>>();
        let error = bounded("inspect c1", Duration::from_secs(5), hang)
            .await
            .expect_err("never answers");
        assert_eq!(error.to_string(), "Docker: inspect c1 took longer than 5s");
    }

    #[tokio::test]
    async fn an_answer_passes_through() {
        let answer = async { Ok::<_, bollard::errors::Error>(7) };
        let value = bounded("ping", Duration::from_secs(5), answer)
            .await
            .expect("answer");
        assert_eq!(value, 7);
    }
}
