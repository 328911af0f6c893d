//! OAuth 2.0 Protected Resource Metadata (RFC 9728): what a client reads to learn which
//! authorization server issues tokens for this server, and with which scopes.
//!
//! Served at `/.well-known/oauth-protected-resource` and at the form with the resource's path
//! appended (`…/oauth-protected-resource/mcp`), which the MCP authorization spec has clients
//! try first; every 401 names the latter in its challenge.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;

/// The document, and where it is served.
#[derive(Debug, Clone)]
pub struct ResourceMetadata {
    document: Document,
    /// The path-suffixed well-known URL of the document.
    url: String,
    /// The paths it is served at on this server.
    paths: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Document {
    /// The canonical URI of `/mcp`: the audience tokens must name (RFC 8707).
    resource: String,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    bearer_methods_supported: Vec<&'static str>,
    resource_name: &'static str,
}

/// Why a resource URL cannot be this server's identifier.
#[derive(Debug, thiserror::Error)]
pub enum BadResource {
    #[error("TODO_RESOURCE_URL `{0}` is not an absolute http(s) URL")]
    NotHttp(String),
    #[error("TODO_RESOURCE_URL `{0}` must have no query or fragment (RFC 8707)")]
    QueryOrFragment(String),
}

impl ResourceMetadata {
    /// The metadata of `resource` (the canonical URI of `/mcp`), whose tokens `issuer` issues
    /// with `scopes`.
    pub fn new(resource: &str, issuer: &str, scopes: [&str; 2]) -> Result<Self, BadResource> {
        let url =
            reqwest::Url::parse(resource).map_err(|_| BadResource::NotHttp(resource.into()))?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err(BadResource::NotHttp(resource.into()));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(BadResource::QueryOrFragment(resource.into()));
        }
        let base = "/.well-known/oauth-protected-resource";
        let suffix = url.path().trim_end_matches('/');
        let mut paths = vec![base.to_owned()];
        if !suffix.is_empty() {
            paths.push(format!("{base}{suffix}"));
        }
        let origin = url.origin().ascii_serialization();
        Ok(Self {
            url: format!("{origin}{base}{suffix}"),
            paths,
            document: Document {
                resource: resource.to_owned(),
                authorization_servers: vec![issuer.to_owned()],
                scopes_supported: scopes.iter().map(|s| (*s).to_owned()).collect(),
                bearer_methods_supported: vec!["header"],
                resource_name: "todo-mcp",
            },
        })
    }

    /// The path-suffixed well-known URL, which challenges point to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The paths to serve the document at.
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// The canonical URI of `/mcp`.
    pub fn resource(&self) -> &str {
        &self.document.resource
    }
}

/// `GET` of the metadata. Public, and readable by browser-based clients from any origin.
pub async fn serve(State(metadata): State<Arc<ResourceMetadata>>) -> Response {
    let mut response = Json(&metadata.document).into_response();
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_well_known_url_keeps_the_resource_path() {
        let m = ResourceMetadata::new(
            "https://todo.example.com/mcp",
            "https://id.example.com",
            ["tasks:read", "tasks:write"],
        )
        .unwrap();
        assert_eq!(
            m.url(),
            "https://todo.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            m.paths(),
            [
                "/.well-known/oauth-protected-resource",
                "/.well-known/oauth-protected-resource/mcp"
            ]
        );
        let doc = serde_json::to_value(&m.document).unwrap();
        assert_eq!(doc["resource"], "https://todo.example.com/mcp");
        assert_eq!(doc["authorization_servers"][0], "https://id.example.com");
        assert_eq!(doc["scopes_supported"][1], "tasks:write");

        let root = ResourceMetadata::new("http://127.0.0.1:8080", "http://x", ["r", "w"]).unwrap();
        assert_eq!(
            root.url(),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource"
        );
        assert_eq!(root.paths().len(), 1);
    }

    #[test]
    fn resource_urls_must_be_plain_http_urls() {
        for bad in [
            "todo",
            "ftp://x/mcp",
            "https://x/mcp?a=1",
            "https://x/mcp#f",
        ] {
            assert!(
                ResourceMetadata::new(bad, "https://id", ["r", "w"]).is_err(),
                "{bad}"
            );
        }
    }
}
