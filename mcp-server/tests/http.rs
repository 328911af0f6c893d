//! The HTTP application started on port 0: probes, authentication and graceful shutdown.
//! (Tool calls over HTTP are exercised end to end by tests/e2e with the official MCP client.)

use clap::Parser;
use mcp_server::config::Config;
use mcp_server::startup::Application;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

async fn start() -> (
    u16,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("todo.db").display());
    let config = Config::parse_from([
        "todo-mcp",
        "--transport",
        "http",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &url,
        "--jwt-secret",
        SECRET,
    ]);
    let app = Application::build(&config).await.expect("build");
    let port = app.port();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    (port, stop, handle, dir)
}

/// Sends one raw HTTP/1.1 request and returns the whole response.
async fn request(port: u16, head: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = format!(
        "{head}\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn probes_answer_without_a_token() {
    let (port, stop, handle, _dir) = start().await;
    let health = request(port, "GET /healthz HTTP/1.1", "").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let ready = request(port, "GET /readyz HTTP/1.1", "").await;
    assert!(
        ready.starts_with("HTTP/1.1 200") && ready.contains(r#""database":"ok""#),
        "{ready}"
    );
    stop.send(()).unwrap();
    handle.await.unwrap().expect("clean shutdown");
}

#[tokio::test]
async fn mcp_requires_a_bearer_token() {
    let (port, stop, handle, _dir) = start().await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let resp = request(
        port,
        "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream",
        body,
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    assert!(
        resp.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{resp}"
    );
    let resp = request(
        port,
        "POST /mcp HTTP/1.1\r\nAuthorization: Bearer not.a.token\r\nContent-Type: application/json",
        body,
    )
    .await;
    assert!(
        resp.starts_with("HTTP/1.1 401") && resp.contains(r#"error="invalid_token""#),
        "{resp}"
    );
    stop.send(()).unwrap();
    handle.await.unwrap().expect("clean shutdown");
}

#[tokio::test]
async fn http_needs_a_strong_secret() {
    let config = Config::parse_from(["todo-mcp", "--transport", "http", "--jwt-secret", "short"]);
    let err = Application::build(&config).await.err().expect("refused");
    assert!(err.to_string().contains("at least 32 bytes"), "{err}");
    let config = Config::parse_from(["todo-mcp", "--transport", "http"]);
    let err = Application::build(&config).await.err().expect("refused");
    assert!(err.to_string().contains("TODO_JWT_SECRET"), "{err}");
}
