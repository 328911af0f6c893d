//! What a caller may do. Tokens from an identity provider carry scopes: the read scope lets a
//! caller use the tools that only read, and read its notifications; the write scope lets it use
//! the others. The machine's user over stdio, and tokens signed with the shared secret, may do
//! everything.
//!
//! [`Need::of`] says what one JSON-RPC request needs; the HTTP transport uses it to answer a
//! request the token is not enough for with 403 and `insufficient_scope` (so that a client can
//! ask the user for more), and the handlers check it again for every request they run.

use std::sync::Arc;

/// The scope names that gate the tools: identity providers name scopes their own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeNames {
    /// Lets a caller read: the read-only tools, the notifications resource and its events.
    pub read: String,
    /// Lets a caller change tasks, reminders and settings: every other tool.
    pub write: String,
}

impl Default for ScopeNames {
    fn default() -> Self {
        Self {
            read: "tasks:read".to_owned(),
            write: "tasks:write".to_owned(),
        }
    }
}

/// What a request needs of its caller's scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: the handshake, listings of tools and resources, pings, notifications.
    Nothing,
    Read,
    Write,
}

impl Need {
    /// What the JSON-RPC request `method` needs; for `tools/call`, `writes` says whether the
    /// tool named changes anything (`None`: no such tool, which the handler will say).
    pub fn of(method: &str, writes: Option<bool>) -> Self {
        match method {
            "tools/call" => match writes {
                Some(true) => Need::Write,
                Some(false) => Need::Read,
                None => Need::Nothing,
            },
            "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "subscriptions/listen"
            | "logging/setLevel" => Need::Read,
            _ => Need::Nothing,
        }
    }
}

/// What a caller's credentials allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Everything: the machine's user over stdio, or a shared-secret token.
    Full,
    /// What an identity provider granted.
    Scoped {
        read: bool,
        write: bool,
        names: Arc<ScopeNames>,
    },
}

impl Access {
    /// The access that `granted` scopes give.
    pub fn granted<'a>(granted: impl IntoIterator<Item = &'a str>, names: Arc<ScopeNames>) -> Self {
        let (mut read, mut write) = (false, false);
        for scope in granted {
            read |= scope == names.read;
            write |= scope == names.write;
        }
        Access::Scoped { read, write, names }
    }

    /// The scope that `need` asks for and the caller lacks, if any.
    pub fn missing(&self, need: Need) -> Option<&str> {
        let Access::Scoped { read, write, names } = self else {
            return None;
        };
        match need {
            Need::Read if !read => Some(&names.read),
            Need::Write if !write => Some(&names.write),
            _ => None,
        }
    }

    /// Whether the caller has every scope, so that nothing it asks can need more.
    pub fn is_full(&self) -> bool {
        matches!(
            self,
            Access::Full
                | Access::Scoped {
                    read: true,
                    write: true,
                    ..
                }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scoped(granted: &[&str]) -> Access {
        Access::granted(granted.iter().copied(), Arc::new(ScopeNames::default()))
    }

    #[test]
    fn each_scope_opens_its_own_tools() {
        let reader = scoped(&["openid", "tasks:read"]);
        assert_eq!(reader.missing(Need::Read), None);
        assert_eq!(reader.missing(Need::Write), Some("tasks:write"));
        let writer = scoped(&["tasks:write"]);
        assert_eq!(writer.missing(Need::Read), Some("tasks:read"));
        assert_eq!(writer.missing(Need::Write), None);
        let none = scoped(&[]);
        assert_eq!(none.missing(Need::Nothing), None);
        assert_eq!(none.missing(Need::Read), Some("tasks:read"));
        assert!(scoped(&["tasks:read", "tasks:write"]).is_full());
        assert!(!reader.is_full());
        assert_eq!(Access::Full.missing(Need::Write), None);
    }

    #[test]
    fn scope_names_match_exactly() {
        let names = Arc::new(ScopeNames {
            read: "todo.read".into(),
            write: "todo.write".into(),
        });
        let access = Access::granted(["tasks:read", "TODO.READ", "todo.write"], names);
        assert_eq!(access.missing(Need::Read), Some("todo.read"));
        assert_eq!(access.missing(Need::Write), None);
    }

    #[test]
    fn what_requests_need() {
        assert_eq!(Need::of("tools/call", Some(true)), Need::Write);
        assert_eq!(Need::of("tools/call", Some(false)), Need::Read);
        assert_eq!(Need::of("tools/call", None), Need::Nothing);
        assert_eq!(Need::of("resources/read", None), Need::Read);
        assert_eq!(Need::of("subscriptions/listen", None), Need::Read);
        assert_eq!(Need::of("initialize", None), Need::Nothing);
        assert_eq!(Need::of("tools/list", None), Need::Nothing);
    }
}
