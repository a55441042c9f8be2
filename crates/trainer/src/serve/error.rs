//! Why the server could not start or stopped.

/// A server that could not listen, or failed while serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: String, error: std::io::Error },
    #[error("the HTTP server failed: {0}")]
    Failed(std::io::Error),
}
