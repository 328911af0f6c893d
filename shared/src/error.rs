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
    /// A message longer than [`MAX_MESSAGE_CHARS`] is cut in the middle, so that an error about
    /// a huge input (a library's message may repeat it whole) stays short and keeps both what
    /// was wrong and what would be accepted.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: elide_middle(message.into(), MAX_MESSAGE_CHARS),
        }
    }
}

/// The longest error message sent back to a caller, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// `message` unchanged when it has at most `max_chars` characters; otherwise its beginning and
/// end joined by ` … `, `max_chars` characters in all.
pub fn elide_middle(message: String, max_chars: usize) -> String {
    let total = message.chars().count();
    if total <= max_chars {
        return message;
    }
    let keep = max_chars.saturating_sub(3);
    let head: String = message.chars().take(keep / 2).collect();
    let tail: String = message.chars().skip(total - (keep - keep / 2)).collect();
    format!("{head} … {tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_messages_are_kept_whole() {
        assert_eq!(elide_middle("fine".into(), 10), "fine");
        assert_eq!(elide_middle("exactly10!".into(), 10), "exactly10!");
    }

    #[test]
    fn long_messages_keep_their_beginning_and_end() {
        let message = format!("unknown variant `{}`, expected `high`", "é".repeat(10_000));
        let short = elide_middle(message, 60);
        assert_eq!(short.chars().count(), 60);
        assert!(short.starts_with("unknown variant `éé"), "{short}");
        assert!(short.ends_with("expected `high`"), "{short}");
        assert!(short.contains(" … "));
    }

    #[test]
    fn validation_errors_are_capped() {
        let e = ValidationError::new("title", "x".repeat(100_000));
        assert_eq!(e.message.chars().count(), MAX_MESSAGE_CHARS);
    }
}
