//! The recent events of this replica's streamed `/mcp` responses. Keeping them is what makes
//! rmcp open each response stream with a priming event (an event id and a `retry` hint,
//! SEP-1699), and lets a client that lost a stream resume it (`GET /mcp` with `Last-Event-ID`)
//! for a short while, from the replica that streamed it.
//!
//! An event id is its stream's random id and its place in the stream: only a client that was
//! sent one can name it, so no one replays another's responses. Memory stays bounded: streams
//! older than [`KEPT_FOR`], or beyond the newest [`MAX_STREAMS`] or [`MAX_BYTES`], are
//! forgotten.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rmcp::transport::streamable_http_server::session::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::store::{
    EventId, EventStore, EventStoreError, EventStream,
};

/// How long a stream can be resumed.
const KEPT_FOR: Duration = Duration::from_secs(30);

/// The most streams kept at once; under heavy load the oldest go sooner than [`KEPT_FOR`].
const MAX_STREAMS: usize = 10_000;

/// The most bytes of messages kept at once (large results, e.g. long pages of tasks, count
/// against it); beyond it the oldest streams go.
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// Events a stream keeps; a longer stream (none of this server's are) resumes from its tail.
const MAX_EVENTS_PER_STREAM: usize = 64;

#[derive(Default)]
pub struct RecentEvents {
    inner: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    /// Each stream's events, and their messages' size.
    streams: HashMap<String, (Vec<ServerSseMessage>, usize)>,
    /// Streams in the order they were opened, with when.
    opened: VecDeque<(Instant, String)>,
    /// The size of all messages kept.
    bytes: usize,
}

impl Recent {
    fn forget_old(&mut self, now: Instant) {
        while let Some((at, id)) = self.opened.front() {
            let fits = self.opened.len() <= MAX_STREAMS && self.bytes <= MAX_BYTES;
            if now.duration_since(*at) < KEPT_FOR && fits {
                break;
            }
            if let Some((_, bytes)) = self.streams.remove(id) {
                self.bytes -= bytes;
            }
            self.opened.pop_front();
        }
    }
}

/// The size of an event's message as sent.
fn size_of(event: &ServerSseMessage) -> usize {
    event
        .message
        .as_ref()
        .and_then(|m| serde_json::to_vec(&**m).ok())
        .map_or(0, |json| json.len())
}

fn event_id(stream: &str, place: usize) -> String {
    format!("{stream}.{place}")
}

#[async_trait::async_trait]
impl EventStore for RecentEvents {
    async fn store_event(
        &self,
        stream_id: &str,
        event: &ServerSseMessage,
    ) -> Result<EventId, EventStoreError> {
        let now = Instant::now();
        let size = size_of(event);
        let mut recent = self.inner.lock().expect("not poisoned");
        recent.forget_old(now);
        if !recent.streams.contains_key(stream_id) {
            recent.opened.push_back((now, stream_id.to_owned()));
            recent.streams.insert(stream_id.to_owned(), (Vec::new(), 0));
        }
        let (events, bytes) = recent.streams.get_mut(stream_id).expect("just inserted");
        let place = events.len();
        let added = if place < MAX_EVENTS_PER_STREAM {
            let mut event = event.clone();
            event.event_id = Some(event_id(stream_id, place));
            events.push(event);
            *bytes += size;
            size
        } else {
            0
        };
        recent.bytes += added;
        Ok(event_id(stream_id, place))
    }

    async fn replay_events_after(
        &self,
        last_event_id: &str,
    ) -> Result<EventStream, EventStoreError> {
        let unknown = || -> EventStoreError {
            "unknown or expired event id: the stream cannot be resumed; send the request again"
                .into()
        };
        let (stream, place) = last_event_id.rsplit_once('.').ok_or_else(unknown)?;
        let place: usize = place.parse().map_err(|_| unknown())?;
        let mut recent = self.inner.lock().expect("not poisoned");
        recent.forget_old(Instant::now());
        let (events, _) = recent.streams.get(stream).ok_or_else(unknown)?;
        let after: Vec<ServerSseMessage> = events
            .iter()
            .skip(place.saturating_add(1))
            .cloned()
            .collect();
        Ok(Box::pin(futures::stream::iter(after)))
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    async fn replay(store: &RecentEvents, after: &str) -> Result<Vec<Option<String>>, String> {
        match store.replay_events_after(after).await {
            Ok(stream) => Ok(stream.map(|e| e.event_id).collect().await),
            Err(e) => Err(e.to_string()),
        }
    }

    #[tokio::test]
    async fn a_stream_resumes_after_the_last_event_seen_and_only_its_own() {
        let store = RecentEvents::default();
        let retry = ServerSseMessage::retry(Duration::from_secs(3));
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(store.store_event("s1", &retry).await.unwrap());
        }
        store.store_event("s2", &retry).await.unwrap();
        assert_eq!(ids, ["s1.0", "s1.1", "s1.2"]);
        assert_eq!(
            replay(&store, "s1.0").await,
            Ok(vec![Some("s1.1".into()), Some("s1.2".into())])
        );
        assert_eq!(replay(&store, "s1.2").await, Ok(vec![]));
        for bad in ["s3.0", "s1", "s1.x", ""] {
            assert!(
                replay(&store, bad)
                    .await
                    .unwrap_err()
                    .contains("cannot be resumed")
            );
        }
    }

    #[tokio::test]
    async fn old_and_surplus_streams_are_forgotten() {
        let store = RecentEvents::default();
        let retry = ServerSseMessage::retry(Duration::from_secs(3));
        for n in 0..=MAX_STREAMS {
            store.store_event(&format!("s{n}"), &retry).await.unwrap();
        }
        assert!(replay(&store, "s0.0").await.is_err(), "the oldest went");
        assert_eq!(replay(&store, "s1.0").await, Ok(vec![]));
        let recent = store.inner.lock().unwrap();
        assert_eq!(recent.streams.len(), MAX_STREAMS);
        assert_eq!(recent.opened.len(), MAX_STREAMS);
    }
}
