//! Why a Docker call failed ([`DockerError`]), and the engine's answers that matter
//! (404 not found, 409 conflict).
//!
//! May depend on: driver::engine (EngineError).

use orch_driver::engine::EngineError;

/// Why a Docker call failed.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// An engine call failed or took too long.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A local file or program failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The image cannot be built.
    #[error("image {image}: {problem}")]
    Image {
        /// The image (or file) concerned.
        image: String,
        /// What is wrong.
        problem: String,
    },
    /// The network cannot be used.
    #[error("network {network}: {problem}")]
    Network {
        /// The network.
        network: String,
        /// What is wrong.
        problem: String,
    },
    /// Every candidate subnet overlaps a Docker network.
    #[error("no free 172.30.X.0/24 subnet among the Docker networks; name one in docker.subnet")]
    NoSubnet,
}

impl DockerError {
    /// True when the engine answered 404.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            DockerError::Engine(EngineError::Call {
                source: bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    ..
                },
                ..
            })
        )
    }

    /// True when the engine answered 409 (in use, already exists).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            DockerError::Engine(EngineError::Call {
                source: bollard::errors::Error::DockerResponseServerError {
                    status_code: 409,
                    ..
                },
                ..
            })
        )
    }
}
