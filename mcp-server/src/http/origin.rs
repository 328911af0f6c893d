//! Host and Origin allow-lists for the routes rmcp's streamable HTTP service does not check
//! itself (the HTTP+SSE transport): the same rules as its own check, so that `--allowed-hosts`
//! and `--allowed-origins` mean one thing on every route and stop DNS-rebinding attacks from
//! browsers.
//!
//! - Host: allowed when the list is empty, or an entry names its host (and, if the entry has a
//!   port, that port).
//! - Origin: checked only when the list is not empty and the request has one; an entry is an
//!   origin (`https://app.example`, with `:port` or `:*` for any port) or `null`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The allow-lists.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins {
    pub hosts: Vec<String>,
    pub origins: Vec<String>,
}

/// axum middleware: refuses a request whose Host or Origin the lists do not allow.
pub async fn check_origin(
    State(allowed): State<Arc<AllowedOrigins>>,
    request: Request,
    next: Next,
) -> Response {
    match allowed.check(request.uri(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err((status, message)) => {
            tracing::warn!(%message, "refused a request (possible DNS rebinding or cross-origin attack)");
            (status, message).into_response()
        }
    }
}

impl AllowedOrigins {
    fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), (StatusCode, &'static str)> {
        let forbidden = |message| (StatusCode::FORBIDDEN, message);
        let host = match headers.get(header::HOST) {
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|h| Authority::try_from(h).ok())
                .ok_or((StatusCode::BAD_REQUEST, "Bad Request: invalid Host header"))?,
            // HTTP/2 carries the host in `:authority`.
            None => uri
                .authority()
                .cloned()
                .ok_or((StatusCode::BAD_REQUEST, "Bad Request: missing Host header"))?,
        };
        let host_allowed = self.hosts.is_empty()
            || self
                .hosts
                .iter()
                .filter_map(|h| Hostname::allowed(h))
                .any(|allowed| {
                    allowed.host == normalise(host.host())
                        && allowed.port.is_none_or(|p| host.port_u16() == Some(p))
                });
        if !host_allowed {
            return Err(forbidden("Forbidden: Host header is not allowed"));
        }
        let Some(origin) = headers
            .get(header::ORIGIN)
            .filter(|_| !self.origins.is_empty())
        else {
            return Ok(());
        };
        let origin = origin
            .to_str()
            .ok()
            .and_then(Origin::parse)
            .ok_or(forbidden("Forbidden: invalid Origin header"))?;
        if !self.origins.iter().any(|allowed| origin.matches(allowed)) {
            return Err(forbidden("Forbidden: Origin header is not allowed"));
        }
        Ok(())
    }
}

fn normalise(host: &str) -> String {
    host.trim_matches(['[', ']']).to_ascii_lowercase()
}

/// A Host allow-list entry: a host name or address, and maybe a port.
struct Hostname {
    host: String,
    port: Option<u16>,
}

impl Hostname {
    fn allowed(entry: &str) -> Option<Hostname> {
        let entry = entry.trim();
        if entry.is_empty() {
            return None;
        }
        Some(match Authority::try_from(entry) {
            Ok(a) => Hostname {
                host: normalise(a.host()),
                port: a.port_u16(),
            },
            Err(_) => Hostname {
                host: normalise(entry),
                port: None,
            },
        })
    }
}

/// An origin as browsers send it.
#[derive(Debug, PartialEq)]
enum Origin {
    Null,
    Site {
        scheme: String,
        host: String,
        port: Option<u16>,
    },
}

impl Origin {
    fn parse(value: &str) -> Option<Origin> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("null") {
            return Some(Origin::Null);
        }
        let uri = Uri::try_from(value).ok()?;
        let authority = uri.authority()?;
        Some(Origin::Site {
            scheme: uri.scheme_str()?.to_ascii_lowercase(),
            host: normalise(authority.host()),
            port: authority.port_u16(),
        })
    }

    /// Whether the allow-list entry `allowed` admits this origin: the same scheme and host,
    /// and the entry's port (the scheme's default when the origin gives none); any port with
    /// `:*` or with no port in the entry.
    fn matches(&self, allowed: &str) -> bool {
        let allowed = allowed.trim();
        let (entry, any_port) = match allowed.strip_suffix(":*") {
            Some(base) => (base, true),
            None => (allowed, false),
        };
        match (Origin::parse(entry), self) {
            (Some(Origin::Null), Origin::Null) => !any_port,
            (
                Some(Origin::Site { scheme, host, port }),
                Origin::Site {
                    scheme: s,
                    host: h,
                    port: p,
                },
            ) => {
                let default = match s.as_str() {
                    "http" => Some(80),
                    "https" => Some(443),
                    _ => None,
                };
                scheme == *s
                    && host == *h
                    && (any_port || port.is_none_or(|port| p.or(default) == Some(port)))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn check(allowed: &AllowedOrigins, host: &str, origin: Option<&str>) -> Result<(), StatusCode> {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        allowed
            .check(&Uri::from_static("/sse"), &headers)
            .map_err(|(status, _)| status)
    }

    #[test]
    fn hosts_are_checked_by_name_and_port_when_given() {
        let allowed = AllowedOrigins {
            hosts: vec![
                "localhost".into(),
                "127.0.0.1".into(),
                "todo.example:443".into(),
            ],
            origins: vec![],
        };
        assert_eq!(check(&allowed, "localhost:8080", None), Ok(()));
        assert_eq!(check(&allowed, "LOCALHOST", None), Ok(()));
        assert_eq!(check(&allowed, "127.0.0.1:1", None), Ok(()));
        assert_eq!(check(&allowed, "todo.example:443", None), Ok(()));
        assert_eq!(
            check(&allowed, "todo.example:8443", None),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            check(&allowed, "evil.example", None),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            check(&allowed, "bad host", None),
            Err(StatusCode::BAD_REQUEST)
        );
        // No Origin list: any origin.
        assert_eq!(
            check(&allowed, "localhost", Some("https://evil.example")),
            Ok(())
        );
        let anyone = AllowedOrigins::default();
        assert_eq!(check(&anyone, "anything.example", None), Ok(()));
    }

    #[test]
    fn origins_are_checked_by_scheme_host_and_port() {
        let allowed = AllowedOrigins {
            hosts: vec![],
            origins: vec![
                "https://app.example".into(),
                "http://localhost:*".into(),
                "https://ide.example:8443".into(),
            ],
        };
        assert_eq!(
            check(&allowed, "h", None),
            Ok(()),
            "no Origin: not a browser"
        );
        assert_eq!(check(&allowed, "h", Some("https://app.example")), Ok(()));
        assert_eq!(
            check(&allowed, "h", Some("https://APP.example:444")),
            Ok(())
        );
        assert_eq!(check(&allowed, "h", Some("http://localhost:5173")), Ok(()));
        assert_eq!(
            check(&allowed, "h", Some("https://ide.example:8443")),
            Ok(())
        );
        assert_eq!(
            check(&allowed, "h", Some("https://ide.example")),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            check(&allowed, "h", Some("http://app.example")),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            check(&allowed, "h", Some("null")),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            check(&allowed, "h", Some("not an origin")),
            Err(StatusCode::FORBIDDEN)
        );
    }
}
