//! Events as a consumer receives them, and the answer it gives.
//!
//! Both services read a delivered envelope the same way, with cloudevents-sdk ([`Incoming::parse`]):
//! an event of a type the consumer does not handle is not its business; one of its types must be
//! a CloudEvent from the service that publishes that type, with a UUID `id` and `data` of the
//! expected shape, or it can never be processed. A known type on a topic it is never published
//! on is refused too: something is publishing what it should not.
//! Every consumer answers the way a Dapr subscriber does ([`Disposition`]), whether the event came
//! through the sidecar or the in-process bus.

use cloudevents::{AttributesReader, Data, Event};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::events::EventType;

/// A consumer's answer to one event, as in Dapr's pub/sub protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Processed now or before.
    Success,
    /// Failed for a reason that may pass; deliver again later.
    Retry(String),
    /// Can never be processed; give up on it (the subscriber publishes it to the dead-letter
    /// topic).
    Drop(String),
}

impl Disposition {
    /// The `status` Dapr expects in the subscriber's answer.
    pub fn status(&self) -> &'static str {
        match self {
            Disposition::Success => "SUCCESS",
            Disposition::Retry(_) => "RETRY",
            Disposition::Drop(_) => "DROP",
        }
    }
}

/// A delivered event of one of the types a consumer handles, with its data decoded.
#[derive(Debug, Clone)]
pub struct Incoming<T> {
    /// The CloudEvent `id` (a UUID, hyphenated), which the consumer records to process the
    /// event once.
    pub id: String,
    pub event_type: EventType,
    pub data: T,
    /// The W3C trace context the event carries (the CloudEvents distributed-tracing attribute),
    /// which the consumer's work continues; `None` when absent or malformed.
    pub traceparent: Option<String>,
}

impl<T: DeserializeOwned> Incoming<T> {
    /// Reads an envelope delivered on `topic`, in the structured JSON format. `Ok(None)` when
    /// its type is not one of `wanted` (not this consumer's to handle, or a type this version
    /// does not know), or its `dataschema` names a version of the type this consumer does not
    /// read; `Err` with the reason when it can never be processed.
    ///
    /// `source` must be the one service that publishes the type. `specversion` is required by
    /// CloudEvents and always set by Dapr and by our producers; an envelope that leaves it out
    /// is read as 1.0. `data` sent as a JSON string (binary content mode) is accepted too.
    pub fn parse(
        envelope: &Value,
        topic: &str,
        wanted: &[EventType],
    ) -> Result<Option<Self>, String> {
        let ty = envelope
            .get("type")
            .and_then(Value::as_str)
            .ok_or("the event has no `type`")?;
        let Some(event_type) = EventType::parse(ty) else {
            return Ok(None);
        };
        if event_type.topic() != topic {
            return Err(format!("{ty} events are never published on `{topic}`"));
        }
        if !wanted.contains(&event_type) {
            return Ok(None);
        }
        // Another version of the type is another consumer's: while a type changes, both
        // versions are published side by side (README, Consuming the events). An event without
        // `dataschema` comes from a release before versions were named: version 1.
        if let Some(schema) = envelope.get("dataschema").and_then(Value::as_str)
            && schema != event_type.dataschema()
        {
            return Ok(None);
        }
        let source = envelope.get("source").and_then(Value::as_str);
        if source != Some(event_type.source()) {
            return Err(format!(
                "{ty} events come from `{}`, not {}",
                event_type.source(),
                source.map_or("an event without a `source`".to_owned(), |s| format!(
                    "`{s}`"
                ))
            ));
        }
        // Read in place; only an envelope that lacks an attribute is copied to add it.
        let event = if DEFAULTS.iter().all(|(a, _)| envelope.get(a).is_some()) {
            Event::deserialize(envelope)
        } else {
            let mut fields = envelope.as_object().cloned().unwrap_or_default();
            for (attribute, default) in DEFAULTS {
                fields
                    .entry(attribute)
                    .or_insert_with(|| Value::from(default));
            }
            Event::deserialize(Value::Object(fields))
        }
        .map_err(|e| format!("the event is not a CloudEvent: {e}"))?;
        let id = event.id();
        // Hyphenated only: the id is a key in the consumer's records, one spelling per event.
        if id.len() != 36 || uuid::Uuid::try_parse(id).is_err() {
            return Err("the event's `id` is not a UUID".to_owned());
        }
        let data = match event.data().ok_or("the event has no `data`")? {
            Data::Json(Value::String(text)) | Data::String(text) => serde_json::from_str(text),
            Data::Json(value) => T::deserialize(value),
            Data::Binary(bytes) => serde_json::from_slice(bytes),
        }
        .map_err(|e| format!("the `data` of {ty} is malformed: {e}"))?;
        Ok(Some(Self {
            id: id.to_owned(),
            event_type,
            data,
            traceparent: traceparent(envelope),
        }))
    }
}

/// The envelope's `traceparent` attribute, when it has the W3C form (`00-` trace id, span id,
/// flags); anything else is ignored rather than passed on.
pub fn traceparent(envelope: &Value) -> Option<String> {
    let value = envelope.get("traceparent")?.as_str()?;
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let well_formed =
        matches!(parts[..], [v, t, s, f] if hex(v, 2) && hex(t, 32) && hex(s, 16) && hex(f, 2));
    well_formed.then(|| value.to_owned())
}

/// The attributes no consumer reads, as an envelope that leaves them out is read.
const DEFAULTS: [(&str, &str); 1] = [("specversion", "1.0")];

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::RecurringScheduled;

    const RECURRING: EventType = EventType::RecurringScheduled;

    fn data() -> Value {
        json!({
            "owner": "alice",
            "series_id": "0190b7e0-0000-7000-8000-000000000001",
            "previous_task_id": "0190b7e0-0000-7000-8000-000000000002",
            "task_id": "0190b7e0-0000-7000-8000-000000000003",
            "due": "2026-03-09T13:00:00Z",
        })
    }

    const ID: &str = "0190b7e0-0000-7000-8000-0000000000e1";

    fn parse(envelope: Value) -> Result<Option<Incoming<RecurringScheduled>>, String> {
        Incoming::parse(&envelope, "tasks", &[RECURRING])
    }

    /// A recurring.scheduled event as the scheduler publishes it, with `fields` set over it.
    fn event(fields: Value) -> Value {
        let mut event = json!({
            "specversion": "1.0", "id": ID, "source": "/scheduler", "type": RECURRING.as_str(),
            "data": data(),
        });
        for (k, v) in fields.as_object().unwrap() {
            match v {
                Value::Null => event.as_object_mut().unwrap().remove(k),
                v => event.as_object_mut().unwrap().insert(k.clone(), v.clone()),
            };
        }
        event
    }

    #[test]
    fn reads_its_own_version_of_a_type_and_leaves_others() {
        let v1 = event(json!({"dataschema": RECURRING.dataschema()}));
        assert!(parse(v1).unwrap().is_some());
        // Published before versions were named: version 1.
        assert!(parse(event(json!({}))).unwrap().is_some());
        let v2 = event(
            json!({"dataschema": "urn:todo-mcp:events:com.todo.recurring.scheduled:v2",
                               "data": {"another": "shape"}}),
        );
        assert!(
            parse(v2).unwrap().is_none(),
            "another version is another consumer's"
        );
    }

    #[test]
    fn reads_an_event_as_dapr_delivers_it() {
        let envelope = event(json!({
            "datacontenttype": "application/json",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "topic": "tasks", "pubsubname": "pubsub",
        }));
        let event = parse(envelope).unwrap().unwrap();
        assert_eq!(event.id, ID);
        assert_eq!(event.event_type, RECURRING);
        assert_eq!(event.data.owner, "alice");
        assert_eq!(
            event.traceparent.as_deref(),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
    }

    #[test]
    fn a_malformed_traceparent_is_ignored() {
        for bad in [
            json!("00-xyz-b7ad6b7169203331-01"),
            json!(7),
            json!("00-0af7651916cd43dd8448eb211c80319c-b7ad"),
        ] {
            let envelope = json!({"traceparent": bad});
            assert_eq!(super::traceparent(&envelope), None, "{bad}");
        }
    }

    #[test]
    fn accepts_data_as_a_json_string_and_no_specversion() {
        let envelope = event(json!({"specversion": null, "data": data().to_string()}));
        assert!(parse(envelope).unwrap().is_some());
        let old = event(json!({"specversion": "0.1"}));
        assert!(parse(old).unwrap_err().contains("CloudEvent"));
    }

    #[test]
    fn other_types_are_not_ours_and_unusable_events_are_refused() {
        for other in ["com.todo.task.created", "com.todo.task.archived"] {
            let envelope = json!({"type": other, "id": 12});
            assert!(parse(envelope).unwrap().is_none(), "{other}");
        }
        for (envelope, reason) in [
            (event(json!({"type": null})), "`type`"),
            (event(json!({"id": ""})), "not a UUID"),
            (event(json!({"id": "e1"})), "not a UUID"),
            (
                event(json!({"id": "../../v1.0/invoke/x/method/y"})),
                "not a UUID",
            ),
            (event(json!({"id": ID.replace('-', "")})), "not a UUID"),
            (event(json!({"id": 12})), "CloudEvent"),
            (event(json!({"data": null})), "`data`"),
            (event(json!({"data": {"owner": 5}})), "malformed"),
            // Forged: another service's source, or none.
            (
                event(json!({"source": "/mcp-server/tasks"})),
                "come from `/scheduler`",
            ),
            (event(json!({"source": null})), "without a `source`"),
            // A reminder is never published on `tasks`.
            (
                event(json!({"type": "com.todo.reminder.triggered"})),
                "never published on `tasks`",
            ),
        ] {
            let refused = parse(envelope.clone()).unwrap_err();
            assert!(refused.contains(reason), "{envelope}: {refused}");
        }
    }
}
