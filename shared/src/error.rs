//! The one error type of the domain layer: input that does not parse into a domain value.

/// Why a value from outside (a tool argument, an event) was rejected.
///
/// `field` names the argument as the caller spelled it so that a model can fix exactly that
/// argument; `message` says what is wrong and what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{field}`: {message}")]
pub struct ValidationError {
    /// The argument or field at fault, e.g. `title` or `recurrence.weekdays`.
    pub field: &'static str,
    /// What is wrong with it and what would be accepted instead.
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}
