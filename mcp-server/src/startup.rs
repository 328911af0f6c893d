//! Putting the server together: resolve secrets, open the database, start the event machinery,
//! build the tools, serve a transport, and stop cleanly on SIGTERM or Ctrl-C.
//!
//! Background work (the outbox relay; with a sidecar the Dapr app port, without one the embedded
//! scheduler) runs beside the transport and stops with it through one cancellation token.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use rmcp::ServiceExt;
use todo_shared::task::UserId;
use todo_shared::time::{Zone, now};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use todo_dapr::DaprClient;
use todo_dapr::app::required_app_token;
use todo_dapr::shutdown::shutdown_signal;

use crate::app::notifications::NotificationService;
use crate::app::quotas::Quotas;
use crate::app::settings::SettingsService;
use crate::app::tasks::TaskService;
use crate::config::{Config, EventMode, Transport};
use crate::events::bus::EventBus;
use crate::events::consumers::Consumers;
use crate::events::relay::{OutboxRelay, RelaySettings};
use crate::events::sink::Sink;
use crate::events::subscriptions;
use crate::http::auth::Authenticator;
use crate::http::auth::issuer::{Issuer, IssuerSettings};
use crate::http::auth::shared_secret::SharedSecret;
use crate::http::fairness::FairShare;
use crate::http::{HttpSettings, router};
use crate::mcp::access::ScopeNames;
use crate::mcp::{LocalUser, Services, TodoServer};
use crate::scheduling::{EmbeddedScheduler, SchedulerSubscriber};
use crate::secrets::{self, Secrets};
use crate::store::retention::{self, Retention};
use crate::store::{Backend, Db, outbox};

/// What every transport serves from.
pub struct Core {
    pub db: Db,
    pub tasks: TaskService,
    pub notifications: NotificationService,
    /// The sidecar, when events go through Dapr.
    dapr: Option<DaprClient>,
    /// What the sidecar must present on the app port (checked before anything starts).
    app_token: Option<String>,
    secrets: Secrets,
    /// Stops the background work.
    shutdown: CancellationToken,
    background: JoinSet<()>,
}

impl Core {
    /// Resolves secrets (waiting for a sidecar if there is one), opens and migrates the
    /// database, and builds the services; `serving_http` when bearer tokens must be checked.
    pub async fn open(config: &Config, serving_http: bool) -> anyhow::Result<Self> {
        let shutdown = CancellationToken::new();
        let dapr = match config.events {
            EventMode::Embedded => None,
            EventMode::Dapr => Some(DaprClient::from_env()?.context(
                "--events dapr needs a sidecar, but neither DAPR_GRPC_PORT nor DAPR_GRPC_ENDPOINT is set",
            )?),
            EventMode::Auto => DaprClient::from_env()?,
        };
        let app_token = match &dapr {
            Some(_) => {
                required_app_token(config.app_api_token.clone(), config.insecure_no_app_token)?
            }
            None => None,
        };
        if let Some(client) = &dapr {
            tracing::info!("waiting for the Dapr sidecar");
            if !client.wait_ready(&shutdown).await {
                anyhow::bail!("stopped while waiting for the Dapr sidecar");
            }
        }
        let secrets = secrets::resolve(config, dapr.as_ref(), serving_http).await?;
        let db = Db::connect(&secrets.database_url, config.db_max_connections).await?;
        tracing::info!(backend = ?db.backend(), events = if dapr.is_some() { "dapr" } else { "embedded" }, "database ready");
        Ok(Self {
            tasks: TaskService::new(db.clone()).with_quotas(Quotas {
                tasks_per_user: config.tasks_per_user,
                series_per_user: config.series_per_user,
                reminders_per_user: config.reminders_per_user,
                min_recurrence_interval: chrono::TimeDelta::minutes(
                    config.min_recurrence_minutes.into(),
                ),
            }),
            notifications: NotificationService::new(db.clone()),
            db,
            dapr,
            app_token,
            secrets,
            shutdown,
            background: JoinSet::new(),
        })
    }

    /// Starts the outbox relay and, with a sidecar, the Dapr app port, or without one the
    /// embedded scheduler.
    pub async fn start_background(&mut self, config: &Config) -> anyhow::Result<()> {
        // Before anything can fire, so that every notification recorded is heard.
        self.notifications
            .hear_announcements(&mut self.background, self.shutdown.clone())
            .await
            .context("cannot listen for new notifications")?;
        let consumers = Consumers::new(self.tasks.clone(), self.notifications.clone());
        let sink = match &self.dapr {
            Some(client) => {
                let listener = TcpListener::bind(config.app_listen)
                    .await
                    .with_context(|| {
                        format!("cannot listen on the app port {}", config.app_listen)
                    })?;
                tracing::info!(addr = %config.app_listen, "serving Dapr subscriptions");
                let app = subscriptions::router(consumers, client.clone(), self.app_token.clone());
                let stop = self.shutdown.clone();
                self.background.spawn(async move {
                    let served = axum::serve(listener, app)
                        .with_graceful_shutdown(async move { stop.cancelled().await })
                        .await;
                    if let Err(e) = served {
                        tracing::error!(error = %e, "the Dapr app port failed");
                    }
                });
                Sink::Dapr(client.clone())
            }
            None => {
                // No sidecar, so no todo-scheduler: the same engine runs here.
                let scheduler =
                    EmbeddedScheduler::new(self.db.clone(), self.tasks.events_committed());
                let engine = scheduler.engine.clone();
                scheduler.start(&mut self.background, &self.shutdown);
                let mut subscribers = consumers.subscribers();
                subscribers.push(Arc::new(SchedulerSubscriber { engine }));
                Sink::InProcess(EventBus::new(subscribers))
            }
        };
        let settings = RelaySettings {
            retention: chrono::Duration::hours(i64::from(config.outbox_retention_hours)),
            max_attempts: config.outbox_max_attempts,
            lease: std::time::Duration::from_secs(config.outbox_lease_seconds.into()),
            // SQLite has one writer, which in-process subscribers need too.
            workers: match self.db.backend() {
                Backend::Postgres => config.outbox_workers as usize,
                Backend::Sqlite => 1,
            },
            ..RelaySettings::default()
        };
        let relay = OutboxRelay::new(
            self.db.clone(),
            sink,
            settings,
            self.tasks.events_committed(),
        );
        self.background.spawn(relay.run(self.shutdown.clone()));
        let retention = Retention {
            processed_events: chrono::Duration::hours(config.processed_retention_hours.into()),
            notifications: chrono::Duration::days(config.notification_retention_days.into()),
            notifications_per_user: config.notifications_per_user,
        };
        let db = self.db.clone();
        let stop = self.shutdown.clone();
        self.background
            .spawn(async move { prune_periodically(db, retention, stop).await });
        Ok(())
    }

    /// Serves Prometheus metrics on `addr`; the outbox's gauges are read at each scrape.
    async fn serve_metrics(&mut self, addr: std::net::SocketAddr) -> anyhow::Result<()> {
        let handle = todo_dapr::metrics::recorder()?;
        crate::mcp::route::describe_metrics();
        crate::events::relay::describe_metrics();
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on the metrics address {addr}"))?;
        tracing::info!(%addr, "serving Prometheus metrics at /metrics");
        let db = self.db.clone();
        let refresh = move || {
            let db = db.clone();
            async move {
                match outbox::backlog(&db, now()).await {
                    Ok(b) => {
                        metrics::gauge!("todo_outbox_pending").set(b.pending as f64);
                        metrics::gauge!("todo_outbox_oldest_age_seconds")
                            .set(b.oldest_age_seconds.unwrap_or(0) as f64);
                        metrics::gauge!("todo_outbox_dead_letters").set(b.dead_letters as f64);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the outbox backlog for metrics")
                    }
                }
            }
        };
        let stop = self.shutdown.clone();
        self.background.spawn(async move {
            if let Err(e) = todo_dapr::metrics::serve(listener, handle, refresh, stop).await {
                tracing::error!(error = %e, "the metrics endpoint failed");
            }
        });
        Ok(())
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    fn tools(&self, local_user: Option<LocalUser>) -> TodoServer {
        let services = Services {
            tasks: self.tasks.clone(),
            notifications: self.notifications.clone(),
            settings: SettingsService::new(self.db.clone()),
        };
        TodoServer::new(services, local_user)
    }

    /// Stops the background work, waits for it, and closes the database.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while self.background.join_next().await.is_some() {}
        self.db.close().await;
    }
}

/// The HTTP server, bound and ready to run. Tests build it on port 0.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    core: Core,
    /// Ends open SSE streams at shutdown.
    streams: CancellationToken,
}

impl Application {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        // Checked before waiting on anything: a configuration error should surface at once.
        if !todo_dapr::client::sidecar_announced() || config.events == EventMode::Embedded {
            authenticator(config, &Secrets::from_environment(config))?;
        }
        let mut core = Core::open(config, true).await?;
        let authenticator = Arc::new(authenticator(config, &core.secrets)?);
        let warming = authenticator.clone();
        tokio::spawn(async move { warming.warm_up().await });
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        core.start_background(config).await?;
        if let Some(addr) = config.metrics_listen {
            core.serve_metrics(addr).await?;
        }
        let streams = CancellationToken::new();
        let settings = HttpSettings {
            allowed_hosts: allowed_hosts(config, &authenticator),
            authenticator,
            allowed_origins: config.allowed_origins.clone(),
            max_body_bytes: config.max_body_bytes,
            fair_share: FairShare {
                per_second: NonZeroU32::new(config.rate_limit_per_second),
                burst: NonZeroU32::new(config.rate_limit_burst).unwrap_or(NonZeroU32::MIN),
                in_flight: config.requests_in_flight_per_user.map_or_else(
                    || default_in_flight(config.db_max_connections),
                    |n| n as usize,
                ),
            },
        };
        let router = router(core.tools(None), core.db.clone(), settings, streams.clone());
        Ok(Self {
            listener,
            router,
            core,
            streams,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// Serves until `stop` completes, then finishes in-flight requests and stops the rest.
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.listener.local_addr()?;
        tracing::info!(%addr, "serving MCP over streamable HTTP at /mcp");
        let streams = self.streams.clone();
        // Small request/response exchanges: send each as soon as it is written.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::warn!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let served = axum::serve(listener, self.router)
            .with_graceful_shutdown(async move {
                stop.await;
                tracing::info!("shutting down");
                streams.cancel();
            })
            .await;
        self.core.stop().await;
        Ok(served?)
    }
}

/// The Host headers to answer: the configured ones and, with an identity provider, the host of
/// the resource URL, which is where clients reach the server by definition.
fn allowed_hosts(config: &Config, authenticator: &Authenticator) -> Vec<String> {
    let mut hosts = config.allowed_hosts.clone();
    let resource_host = authenticator
        .resource_metadata_url()
        .and_then(|url| reqwest::Url::parse(url).ok())
        .and_then(|url| url.host_str().map(str::to_owned));
    if let Some(host) = resource_host
        && !hosts.contains(&host)
    {
        hosts.push(host);
    }
    hosts
}

/// The bearer-token check the configuration asks for: an identity provider's tokens when
/// TODO_AUTH_ISSUER is set, else tokens signed with the shared secret.
fn authenticator(config: &Config, secrets: &Secrets) -> anyhow::Result<Authenticator> {
    let Some(issuer) = config.auth_issuer.clone() else {
        let secret = secrets.jwt_secret.as_deref().context(
            "the HTTP transport needs TODO_JWT_SECRET (the HS256 secret that signs bearer \
             tokens) or TODO_AUTH_ISSUER (an identity provider that issues them)",
        )?;
        return Ok(Authenticator::SharedSecret(SharedSecret::new(
            secret.as_bytes(),
            config.jwt_audience.as_deref(),
            config.jwt_issuer.as_deref(),
        )?));
    };
    let resource = config.resource_url.clone().context(
        "TODO_AUTH_ISSUER needs TODO_RESOURCE_URL: the URL clients reach /mcp at, which tokens \
         must name as their audience",
    )?;
    let credentials = match (
        &config.auth_introspection_client_id,
        &secrets.introspection_secret,
    ) {
        (Some(id), Some(secret)) => Some((id.clone(), secret.clone())),
        (Some(_), None) => anyhow::bail!(
            "TODO_AUTH_INTROSPECTION_CLIENT_ID is set but TODO_AUTH_INTROSPECTION_CLIENT_SECRET \
             (or the `introspection-client-secret` secret) is not"
        ),
        (None, _) => None,
    };
    let settings = IssuerSettings {
        issuer,
        resource,
        scopes: ScopeNames {
            read: config.auth_read_scope.clone(),
            write: config.auth_write_scope.clone(),
        },
        jwks_max_age: Duration::from_secs(config.auth_jwks_max_age_seconds.into()),
        introspection_endpoint: config.auth_introspection_url.clone(),
        introspection_credentials: credentials,
        allow_http: config.auth_allow_http_issuer,
    };
    Ok(Authenticator::Issuer(Issuer::new(settings)?))
}

/// Serves one client over stdin/stdout until it disconnects or `stop` completes.
pub async fn run_stdio(config: &Config, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let user = UserId::parse(config.local_user().trim()).context("invalid --user / TODO_USER")?;
    let mut core = Core::open(config, false).await?;
    // Subscribed before anything can fire: a reminder that fell due while the server was down
    // fires as soon as the scheduler starts, before the client has finished its handshake.
    let feed = core.notifications.subscribe();
    core.start_background(config).await?;
    let local = LocalUser {
        user: user.clone(),
        zone: machine_zone(),
    };
    tracing::info!(user = %user, zone = local.zone.map(|z| z.name()), "serving MCP over stdio");
    let server = core.tools(Some(local));
    let pushes = server.pushes().context("a stdio connection pushes")?;
    let service = server
        .serve(rmcp::transport::stdio())
        .await
        .context("MCP initialisation over stdio failed");
    let outcome = match service {
        Ok(service) => {
            // Unless a request (resources/subscribe, logging/setLevel) started it already.
            if pushes.start() {
                let peer = service.peer().clone();
                tokio::spawn(crate::mcp::push::push(feed, peer, user, pushes));
            }
            let cancel = service.cancellation_token();
            tokio::select! {
                outcome = service.waiting() => outcome.map(drop).map_err(anyhow::Error::from),
                () = stop => { cancel.cancel(); Ok(()) }
            }
        }
        Err(e) => Err(e),
    };
    core.stop().await;
    outcome
}

/// The zone of the machine the server runs on: `TZ` when it names an IANA zone (`Europe/Paris`,
/// `:Europe/Paris` or a path into a zoneinfo directory), else the system's zone.
fn machine_zone() -> Option<Zone> {
    let from_env = std::env::var("TZ").ok().filter(|tz| !tz.is_empty());
    if let Some(tz) = from_env {
        let name = tz.trim_start_matches(':');
        let name = name.rsplit_once("zoneinfo/").map_or(name, |(_, n)| n);
        match Zone::parse("TZ", name) {
            Ok(zone) => return Some(zone),
            Err(_) => tracing::warn!(%tz, "TZ names no IANA time zone; using the system's"),
        }
    }
    match iana_time_zone::get_timezone() {
        Ok(name) => Zone::parse("time zone", &name).ok(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell this machine's time zone; UTC applies");
            None
        }
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

/// Every ten minutes, removes what [`Retention`] no longer keeps (the first time ten minutes
/// after start, so that a restart costs no pass).
async fn prune_periodically(db: Db, retention: Retention, stop: CancellationToken) {
    let period = std::time::Duration::from_secs(600);
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        match retention::prune(&db, &retention, now()).await {
            Ok(pruned) => tracing::debug!(?pruned, "pruned what is no longer kept"),
            Err(e) => tracing::warn!(error = %e, "pruning failed; the next pass tries again"),
        }
    }
}

/// One user's default share of requests in flight: half the database pool, so that one user
/// always leaves the other half to the rest, and no more than the machine's cores, as more
/// would only queue for them.
fn default_in_flight(db_max_connections: u32) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (db_max_connections as usize / 2).min(cores).max(1)
}
