//! The sink: a Dapr subscriber app that stands for the consumers of the pipeline.
//!
//! It subscribes (programmatically, `GET /dapr/subscribe`) to the given topics of pub/sub
//! `pubsub` in bulk, as the services do (`--one-by-one`: one event per request, Dapr's default),
//! and for every request its sidecar makes it takes the wall-clock time first, then records each
//! event's id, subject and `time`, and for reminder notifications the `owner`, `reminder_id` and
//! `fire_at` of the data, and answers SUCCESS for each. Nothing else is done per event, so that
//! the sink measures the pipeline rather than itself.
//!
//! With `--grpc-listen` it is called over Dapr's gRPC app callback instead (its sidecar runs with
//! `--app-protocol grpc`), through the `dapr` crate's generated `AppCallback` service, and does
//! the same per event: what the benchmark compares the two app protocols on.
//!
//! The other subcommands read what it recorded on `/bench/count` and `/bench/deliveries`
//! (`?topic=…&from=<index>&owner=…`). Deliveries are kept in arrival order per topic, duplicates
//! included, for the life of the process.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use clap::Args;
use dapr::dapr::proto::common::v1::{InvokeRequest, InvokeResponse};
use dapr::dapr::proto::runtime::v1::app_callback_server::{AppCallback, AppCallbackServer};
use dapr::dapr::proto::runtime::v1::topic_event_response::TopicEventResponseStatus;
use dapr::dapr::proto::runtime::v1::{
    BindingEventRequest, BindingEventResponse, JobEventRequest, JobEventResponse,
    ListInputBindingsResponse, ListTopicSubscriptionsResponse, TopicEventBulkRequest,
    TopicEventBulkResponse, TopicEventRequest, TopicEventResponse, TopicSubscription,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use todo_dapr::app::{PUBSUB_NAME, bulk_subscribe, deliver};
use todo_shared::incoming::Disposition;
use tonic::{Request, Status};

use super::now_ns;

/// `todo-bench pipeline sink`.
#[derive(Args)]
pub struct SinkArgs {
    /// Where to listen (the sidecar's --app-port).
    #[arg(long)]
    listen: SocketAddr,
    /// Where to serve Dapr's gRPC app callback (the sidecar's --app-port, with
    /// --app-protocol grpc); `--listen` then serves only the benchmark's queries.
    #[arg(long)]
    grpc_listen: Option<SocketAddr>,
    /// Topics of pub/sub `pubsub` to subscribe to, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "tasks,notifications")]
    topics: Vec<String>,
    /// Subscribe one event per request (the sidecar's default) rather than in bulk, as the
    /// services do: the baseline bulk delivery is measured against.
    #[arg(long)]
    one_by_one: bool,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// One event as the sink received it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    /// When the request reached the handler, ns since the Unix epoch.
    pub recv_ns: i64,
    /// The CloudEvent `id`.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The CloudEvent `time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// `data.owner` (reminder notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `data.reminder_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_id: Option<String>,
    /// `data.fire_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fire_at: Option<String>,
}

impl Delivery {
    fn from_event(recv_ns: i64, event: &Value) -> Self {
        let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        // `data` is an object for JSON events; tolerate it arriving as a JSON string.
        let parsed;
        let data = match event.get("data") {
            Some(Value::String(text)) => {
                parsed = serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
                Some(&parsed)
            }
            other => other,
        };
        let field = |k: &str| s(data.and_then(|d| d.get(k)));
        Self {
            recv_ns,
            id: s(event.get("id")).unwrap_or_default(),
            subject: s(event.get("subject")),
            time: s(event.get("time")),
            owner: field("owner"),
            reminder_id: field("reminder_id"),
            fire_at: field("fire_at"),
        }
    }
}

struct Sink {
    topics: Vec<String>,
    /// Subscribed without bulk delivery.
    one_by_one: bool,
    deliveries: Mutex<HashMap<String, Vec<Delivery>>>,
}

#[derive(Deserialize)]
struct Filter {
    topic: String,
    #[serde(default)]
    from: usize,
    owner: Option<String>,
}

impl Sink {
    /// Keeps a delivery; false when the sink does not subscribe to `topic`.
    fn record(&self, topic: &str, delivery: Delivery) -> bool {
        let mut all = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        match all.get_mut(topic) {
            Some(list) => {
                list.push(delivery);
                true
            }
            None => false,
        }
    }

    /// The deliveries of `f.topic` from index `f.from` (of `f.owner`), and the topic's total.
    fn select<T>(
        &self,
        f: &Filter,
        with: impl FnOnce(&mut dyn Iterator<Item = &Delivery>) -> T,
    ) -> (T, usize) {
        let all = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        let list = all.get(&f.topic).map_or(&[][..], Vec::as_slice);
        let mut it = list
            .iter()
            .skip(f.from)
            .filter(|d| f.owner.is_none() || d.owner == f.owner);
        (with(&mut it), list.len())
    }
}

/// Serves the sink until SIGTERM or Ctrl-C.
pub async fn run(args: SinkArgs) -> anyhow::Result<()> {
    let sink = Arc::new(Sink {
        deliveries: Mutex::new(
            args.topics
                .iter()
                .map(|t| (t.clone(), Vec::new()))
                .collect(),
        ),
        topics: args.topics,
        one_by_one: args.one_by_one,
    });
    let app = Router::new()
        .route("/dapr/subscribe", get(subscribe))
        .route("/events/{topic}", post(event))
        .route("/bench/count", get(count))
        .route("/bench/deliveries", get(deliveries))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(sink.clone());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!(
        "sink listening on {} for topics {:?}",
        args.listen, sink.topics
    );
    let http =
        axum::serve(listener, app).with_graceful_shutdown(todo_dapr::shutdown::shutdown_signal());
    let Some(grpc) = args.grpc_listen else {
        return Ok(http.await?);
    };
    eprintln!("sink serving Dapr's gRPC app callback on {grpc}");
    let callback = tonic::transport::Server::builder()
        .add_service(AppCallbackServer::new(GrpcSink(sink)))
        .serve_with_shutdown(grpc, todo_dapr::shutdown::shutdown_signal());
    tokio::try_join!(
        async { http.await.context("the HTTP server failed") },
        async { callback.await.context("the gRPC app callback failed") },
    )?;
    Ok(())
}

/// The sink over Dapr's gRPC app callback.
struct GrpcSink(Arc<Sink>);

#[tonic::async_trait]
impl AppCallback for GrpcSink {
    async fn on_invoke(
        &self,
        _: Request<InvokeRequest>,
    ) -> Result<tonic::Response<InvokeResponse>, Status> {
        Err(Status::unimplemented("the sink serves no invocations"))
    }

    async fn list_topic_subscriptions(
        &self,
        _: Request<()>,
    ) -> Result<tonic::Response<ListTopicSubscriptionsResponse>, Status> {
        let subscriptions = self
            .0
            .topics
            .iter()
            .map(|topic| TopicSubscription {
                pubsub_name: PUBSUB_NAME.to_owned(),
                topic: topic.clone(),
                ..Default::default()
            })
            .collect();
        Ok(tonic::Response::new(ListTopicSubscriptionsResponse {
            subscriptions,
        }))
    }

    async fn on_topic_event(
        &self,
        request: Request<TopicEventRequest>,
    ) -> Result<tonic::Response<TopicEventResponse>, Status> {
        let recv_ns = now_ns();
        let event = request.into_inner();
        // The same fields the HTTP route reads from the envelope: `subject` and `time` come as
        // CloudEvent extensions.
        let extension = |name: &str| {
            let value = event.extensions.as_ref()?.fields.get(name)?;
            match &value.kind {
                Some(prost_types::value::Kind::StringValue(s)) => Some(s.clone()),
                _ => None,
            }
        };
        let envelope = json!({
            "id": event.id,
            "subject": extension("subject"),
            "time": extension("time"),
            "data": serde_json::from_slice::<Value>(&event.data).unwrap_or(Value::Null),
        });
        if !self
            .0
            .record(&event.topic, Delivery::from_event(recv_ns, &envelope))
        {
            return Err(Status::not_found("not subscribed"));
        }
        Ok(tonic::Response::new(TopicEventResponse {
            status: TopicEventResponseStatus::Success.into(),
        }))
    }

    async fn list_input_bindings(
        &self,
        _: Request<()>,
    ) -> Result<tonic::Response<ListInputBindingsResponse>, Status> {
        Ok(tonic::Response::new(ListInputBindingsResponse::default()))
    }

    async fn on_binding_event(
        &self,
        _: Request<BindingEventRequest>,
    ) -> Result<tonic::Response<BindingEventResponse>, Status> {
        Err(Status::unimplemented("the sink has no bindings"))
    }

    async fn on_bulk_topic_event(
        &self,
        _: Request<TopicEventBulkRequest>,
    ) -> Result<tonic::Response<TopicEventBulkResponse>, Status> {
        Err(Status::unimplemented(
            "the sink subscribes one event at a time",
        ))
    }

    async fn on_job_event(
        &self,
        _: Request<JobEventRequest>,
    ) -> Result<tonic::Response<JobEventResponse>, Status> {
        Err(Status::unimplemented("the sink has no jobs"))
    }
}

async fn subscribe(State(sink): State<Arc<Sink>>) -> Json<Value> {
    Json(Value::Array(
        sink.topics
            .iter()
            .map(|t| {
                let mut subscription =
                    json!({ "pubsubname": PUBSUB_NAME, "topic": t, "route": format!("/events/{t}") });
                if !sink.one_by_one {
                    subscription["bulkSubscribe"] = bulk_subscribe();
                }
                subscription
            })
            .collect(),
    ))
}

async fn event(State(sink): State<Arc<Sink>>, Path(topic): Path<String>, body: Bytes) -> Response {
    let recv_ns = now_ns();
    if !sink.topics.contains(&topic) {
        return (StatusCode::NOT_FOUND, "not subscribed").into_response();
    }
    let sink = &sink;
    let topic = &topic;
    deliver(&body, None, |event| async move {
        sink.record(topic, Delivery::from_event(recv_ns, &event));
        Disposition::Success
    })
    .await
}

async fn count(State(sink): State<Arc<Sink>>, Query(f): Query<Filter>) -> Json<Value> {
    let ((deliveries, distinct), total) = sink.select(&f, |it| {
        let mut ids = HashSet::new();
        let mut n = 0;
        for d in it {
            n += 1;
            ids.insert(d.id.as_str());
        }
        (n, ids.len())
    });
    Json(json!({ "deliveries": deliveries, "distinct": distinct, "total": total }))
}

async fn deliveries(State(sink): State<Arc<Sink>>, Query(f): Query<Filter>) -> Json<Vec<Delivery>> {
    let (list, _) = sink.select(&f, |it| it.cloned().collect::<Vec<_>>());
    Json(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_notification_fields() {
        let event = json!({
            "id": "n1", "subject": "t1", "time": "2030-01-01T00:00:00Z",
            "data": { "owner": "o", "reminder_id": "r1", "fire_at": "2030-01-01T00:00:01Z" }
        });
        let d = Delivery::from_event(7, &event);
        assert_eq!(d.recv_ns, 7);
        assert_eq!(d.id, "n1");
        assert_eq!(d.owner.as_deref(), Some("o"));
        assert_eq!(d.fire_at.as_deref(), Some("2030-01-01T00:00:01Z"));
        let stringly = json!({ "id": "n2", "data": "{\"owner\":\"p\"}" });
        assert_eq!(
            Delivery::from_event(0, &stringly).owner.as_deref(),
            Some("p")
        );
    }
}
