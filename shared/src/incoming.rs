//! Events as a consumer receives them, and the answer it gives.
//!
//! Every consumer of both services answers a delivered event the way a Dapr subscriber does
//! ([`Disposition`]), whether the event came through the sidecar or the in-process bus.

/// A consumer's answer to one event, as in Dapr's pub/sub protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Processed now or before.
    Success,
    /// Failed for a reason that may pass; deliver again later.
    Retry(String),
    /// Can never be processed; give up on it (Dapr sends it to the dead-letter topic).
    Drop(String),
}

impl Disposition {
    /// The `status` Dapr expects in the subscriber's answer.
    pub fn status(&self) -> &'static str {
        match self {
            Disposition::Success => "SUCCESS",
            Disposition::Retry(_) => "RETRY",
            Disposition::Drop(_) => "DROP",
        }
    }
}
