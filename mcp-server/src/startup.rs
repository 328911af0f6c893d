//! Putting the server together: open the database, build the tools, serve a transport, and stop
//! cleanly on SIGTERM or Ctrl-C.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::serve::ListenerExt;
use rmcp::ServiceExt;
use todo_shared::task::UserId;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenVerifier;
use crate::config::{Config, Transport};
use crate::db::Db;
use crate::http::{HttpSettings, router};
use crate::notifications::NotificationService;
use crate::tasks::service::TaskService;
use crate::tools::TodoServer;

/// Opens (and migrates) the configured database.
pub async fn open_database(config: &Config) -> anyhow::Result<Db> {
    let url = config.database_url();
    let db = Db::connect(&url, config.db_max_connections).await?;
    tracing::info!(backend = ?db.backend(), "database ready");
    Ok(db)
}

fn tools(db: &Db, local_user: Option<UserId>) -> TodoServer {
    TodoServer::new(
        TaskService::new(db.clone()),
        NotificationService::new(db.clone()),
        local_user,
    )
}

/// The HTTP server, bound and ready to run. Tests build it on port 0.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    db: Db,
    shutdown: CancellationToken,
}

impl Application {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let secret = config.jwt_secret.as_deref().context(
            "the HTTP transport needs TODO_JWT_SECRET: the HS256 secret that signs bearer tokens",
        )?;
        let verifier = TokenVerifier::new(
            secret.as_bytes(),
            config.jwt_audience.as_deref(),
            config.jwt_issuer.as_deref(),
        )?;
        let db = open_database(config).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let shutdown = CancellationToken::new();
        let settings = HttpSettings {
            verifier: Arc::new(verifier),
            allowed_hosts: config.allowed_hosts.clone(),
            allowed_origins: config.allowed_origins.clone(),
            max_body_bytes: config.max_body_bytes,
        };
        let router = router(tools(&db, None), db.clone(), settings, shutdown.clone());
        Ok(Self {
            listener,
            router,
            db,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// Serves until `stop` completes, then finishes in-flight requests and closes the database.
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.listener.local_addr()?;
        tracing::info!(%addr, "serving MCP over streamable HTTP at /mcp");
        let shutdown = self.shutdown.clone();
        // Small request/response exchanges: send each as soon as it is written.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::warn!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        axum::serve(listener, self.router)
            .with_graceful_shutdown(async move {
                stop.await;
                tracing::info!("shutting down");
                // Ends open SSE streams so that graceful shutdown does not wait on them.
                shutdown.cancel();
            })
            .await?;
        self.db.close().await;
        Ok(())
    }
}

/// Serves one client over stdin/stdout until it disconnects or `stop` completes.
pub async fn run_stdio(config: &Config, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let user = UserId::parse(&config.local_user()).context("invalid --user / TODO_USER")?;
    let db = open_database(config).await?;
    tracing::info!(user = %user, "serving MCP over stdio");
    let service = tools(&db, Some(user))
        .serve(rmcp::transport::stdio())
        .await
        .context("MCP initialisation over stdio failed")?;
    let cancel = service.cancellation_token();
    tokio::select! {
        outcome = service.waiting() => { outcome?; }
        () = stop => { cancel.cancel(); }
    }
    db.close().await;
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Runs the configured transport until it ends or a shutdown signal arrives.
pub async fn run(config: Config) -> anyhow::Result<()> {
    match config.transport {
        Transport::Stdio => run_stdio(&config, shutdown_signal()).await,
        Transport::Http => {
            Application::build(&config)
                .await?
                .run_until_stopped(shutdown_signal())
                .await
        }
    }
}
