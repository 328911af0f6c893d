//! The events as a published contract: an AsyncAPI 3.0 document of the channels, who publishes
//! and who consumes on each, and one message per event type, its CloudEvents envelope and its
//! `data`, whose schemas are generated from the Rust types of this crate.
//!
//! `docs/asyncapi.json` is [`asyncapi`]'s output (`cargo run -p todo-shared --example asyncapi`);
//! a test fails when the two differ. `docs/events/released.json` is the document of the last
//! release: [`incompatibilities`] says where a payload no longer satisfies a consumer written
//! against it, which calls for a new version of the type ([`EventType::version`]).

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::events::{
    DEAD_LETTER_TOPIC, EventType, RecurringScheduled, ReminderTriggered, ResyncRequested,
    TOPIC_NOTIFICATIONS, TOPIC_TASKS, TaskEventData,
};
use crate::schema::standardise;

/// The media type events are published with: the whole CloudEvent as JSON (structured mode).
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// The AsyncAPI document of every event of the platform.
pub fn asyncapi() -> Value {
    let mut generator = SchemaGenerator::new(SchemaSettings::draft07().with(|s| {
        s.definitions_path = "/components/schemas/".into();
        s.meta_schema = None;
    }));
    let mut messages = Map::new();
    for event in EventType::ALL {
        let data = data_schema(event, &mut generator);
        messages.insert(message_key(event), message(event, data));
    }
    let mut schemas = generator.take_definitions(true);
    for schema in schemas.values_mut() {
        if let Value::Object(schema) = schema {
            standardise(schema);
        }
    }
    let on = |topic: &str| -> Vec<EventType> {
        EventType::ALL
            .into_iter()
            .filter(|e| e.topic() == topic)
            .collect()
    };
    json!({
        "asyncapi": "3.0.0",
        "id": "urn:todo-mcp:events",
        "info": {
            "title": "todo-mcp events",
            "version": "1.0.0",
            "description": "The lifecycle events of todo-mcp's tasks and the scheduler's \
                reminders and recurrences, on Dapr pub/sub. Every message is a CloudEvents 1.0 \
                event in structured mode: the body is the whole event as JSON, its `data` the \
                payload. Delivery is at least once: deduplicate by `id`. Events of one `subject` \
                are published in order; a task's events also carry its `version` in \
                `data.task.version`, which orders them however they arrive. `dataschema` names \
                the type's payload version; additive changes keep it, anything else is a new \
                version published beside the old one (README, Consuming the events).",
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": {
            TOPIC_TASKS: channel(TOPIC_TASKS, &on(TOPIC_TASKS),
                "Task lifecycle events from todo-mcp, and the scheduler's requests to todo-mcp \
                 (the next occurrence of a series, a resync)."),
            TOPIC_NOTIFICATIONS: channel(TOPIC_NOTIFICATIONS, &on(TOPIC_NOTIFICATIONS),
                "Reminders whose time has come, from the scheduler."),
            DEAD_LETTER_TOPIC: channel(DEAD_LETTER_TOPIC, &EventType::ALL,
                "Events a consumer could not process (malformed, of an unknown type, from the \
                 wrong source, or on the wrong topic), published unchanged by the consumer \
                 that gave up on them."),
        },
        "operations": operations(),
        "components": {
            "messages": messages,
            "schemas": schemas,
        },
    })
}

/// The `data` schema of `event` (a reference into the components).
fn data_schema(event: EventType, generator: &mut SchemaGenerator) -> Value {
    match event {
        EventType::TaskCreated
        | EventType::TaskUpdated
        | EventType::TaskCompleted
        | EventType::TaskDeleted
        | EventType::TaskResynced => generator.subschema_for::<TaskEventData>(),
        EventType::ReminderTriggered => generator.subschema_for::<ReminderTriggered>(),
        EventType::RecurringScheduled => generator.subschema_for::<RecurringScheduled>(),
        EventType::ResyncRequested => generator.subschema_for::<ResyncRequested>(),
    }
    .to_value()
}

/// The name of `event`'s message in the document, e.g. `taskCreated`.
fn message_key(event: EventType) -> String {
    let mut key = String::new();
    let name = event.as_str().trim_start_matches("com.todo.");
    for (i, part) in name.split('.').enumerate() {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            match i {
                0 => key.push(first),
                _ => key.push(first.to_ascii_uppercase()),
            }
            key.extend(chars);
        }
    }
    key
}

fn message_ref(event: EventType) -> Value {
    json!({ "$ref": format!("#/components/messages/{}", message_key(event)) })
}

fn channel(topic: &str, events: &[EventType], description: &str) -> Value {
    let messages: Map<String, Value> = events
        .iter()
        .map(|&e| (message_key(e), message_ref(e)))
        .collect();
    json!({ "address": topic, "description": description, "messages": messages })
}

/// Who sends and who receives what.
fn operations() -> Value {
    let refs = |topic: &str, events: &[EventType]| -> Value {
        events
            .iter()
            .map(|&e| json!({ "$ref": format!("#/channels/{topic}/messages/{}", message_key(e)) }))
            .collect()
    };
    let task_events = [
        EventType::TaskCreated,
        EventType::TaskUpdated,
        EventType::TaskCompleted,
        EventType::TaskDeleted,
        EventType::TaskResynced,
    ];
    let requests = [EventType::RecurringScheduled, EventType::ResyncRequested];
    let reminders = [EventType::ReminderTriggered];
    let operation = |action: &str, topic: &str, events: &[EventType], description: &str| {
        json!({
            "action": action,
            "channel": { "$ref": format!("#/channels/{topic}") },
            "messages": refs(topic, events),
            "description": description,
        })
    };
    json!({
        "publishTaskEvents": operation("send", TOPIC_TASKS, &task_events,
            "todo-mcp publishes every change to a task, from its outbox (the change and its event \
             commit together)."),
        "consumeTaskEvents": operation("receive", TOPIC_TASKS, &task_events,
            "todo-scheduler arms and cancels reminders and recurrences from them."),
        "requestFromScheduler": operation("send", TOPIC_TASKS, &requests,
            "todo-scheduler asks for a series' next occurrence, or for a resync of the schedule."),
        "serveSchedulerRequests": operation("receive", TOPIC_TASKS, &requests,
            "todo-mcp creates the occurrence (once, with the id the event names), or replays the \
             schedule as com.todo.task.resynced."),
        "publishReminders": operation("send", TOPIC_NOTIFICATIONS, &reminders,
            "todo-scheduler publishes a reminder when its time comes."),
        "notifyUsers": operation("receive", TOPIC_NOTIFICATIONS, &reminders,
            "todo-mcp records the notification and pushes it to the user's connected clients."),
        "deadLetter": operation("send", DEAD_LETTER_TOPIC, &EventType::ALL,
            "A consumer publishes an event it cannot process, unchanged, before dropping it."),
    })
}

/// `event`'s message: its CloudEvents envelope, with `data` as its schema says.
fn message(event: EventType, data: Value) -> Value {
    let subject = match event {
        EventType::ReminderTriggered => "The task the reminder is on.",
        EventType::RecurringScheduled => "The id of the occurrence to create.",
        EventType::ResyncRequested => "The epoch of the scheduler's state the resync is for.",
        _ => "The task's id: a task's events are published in order.",
    };
    let id = match event {
        EventType::ReminderTriggered => {
            "Unique per firing of a reminder (a UUIDv5 of the reminder and its time): also the \
             id of the notification it makes."
        }
        EventType::RecurringScheduled => {
            "The id of the occurrence (a UUIDv5 of the series and its due time), so that every \
             producer names the same occurrence alike."
        }
        _ => "Unique per event (a UUIDv7): consumers deduplicate by it.",
    };
    let mut payload = json!({
        "type": "object",
        "required": ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"],
        "properties": {
            "specversion": { "const": "1.0" },
            "id": { "type": "string", "format": "uuid", "description": id },
            "source": { "const": event.source(), "description": "The one service that publishes this type." },
            "type": { "const": event.as_str() },
            "subject": { "type": "string", "format": "uuid", "description": subject },
            "time": { "type": "string", "format": "date-time", "description": "When the change happened." },
            "datacontenttype": { "const": "application/json" },
            "dataschema": {
                "const": event.dataschema(),
                "description": "The version of `data`'s schema (absent in events of releases \
                    before 1.0 of this contract).",
            },
            "traceparent": {
                "type": "string",
                "description": "W3C trace context of the work that produced the event \
                    (CloudEvents distributed tracing extension).",
            },
            "data": data,
        },
    });
    if let Value::Object(schema) = &mut payload {
        standardise(schema);
    }
    json!({
        "name": event.as_str(),
        "title": event.as_str(),
        "summary": event.summary(),
        "contentType": CONTENT_TYPE,
        "payload": payload,
    })
}

/// Where the payloads of `new` no longer satisfy a consumer written against `old` (two
/// AsyncAPI documents): one line per place, empty when every new event would pass the old
/// schemas.
pub fn incompatibilities(old: &Value, new: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let (Some(old_messages), Some(new_messages)) = (
        old.pointer("/components/messages")
            .and_then(Value::as_object),
        new.pointer("/components/messages")
            .and_then(Value::as_object),
    ) else {
        return vec!["a document has no components.messages".to_owned()];
    };
    for (key, old_message) in old_messages {
        let Some(new_message) = new_messages.get(key) else {
            found.push(format!("{key}: the message is gone"));
            continue;
        };
        let mut check = Check {
            old,
            new,
            found: &mut found,
            depth: 0,
        };
        check.schema(&old_message["payload"], &new_message["payload"], key);
    }
    found
}

/// A comparison of two schemas: every value the new one allows must pass the old one.
struct Check<'a> {
    old: &'a Value,
    new: &'a Value,
    found: &'a mut Vec<String>,
    /// Guards against reference cycles.
    depth: usize,
}

impl Check<'_> {
    fn schema(&mut self, old: &Value, new: &Value, at: &str) {
        if self.depth > 64 {
            return;
        }
        self.depth += 1;
        let old = resolve(self.old, old);
        let new = resolve(self.new, new);
        self.objects(old, new, at);
        self.depth -= 1;
    }

    fn say(&mut self, at: &str, what: String) {
        self.found.push(format!("{at}: {what}"));
    }

    fn objects(&mut self, old: &Value, new: &Value, at: &str) {
        let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
            // `true` (or no constraint) accepts everything; `false` in the new schema allows
            // nothing, which no old consumer minds.
            if old == &Value::Bool(false) && new != &Value::Bool(false) {
                self.say(at, "the old schema allows nothing here".into());
            }
            return;
        };
        // A new value must fit one of the old branches.
        if let Some(branches) = o.get("anyOf").or(o.get("oneOf")).and_then(Value::as_array) {
            let new_branches = n
                .get("anyOf")
                .or(n.get("oneOf"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_else(|| vec![new.clone()]);
            for (i, branch) in new_branches.iter().enumerate() {
                let fits = branches.iter().any(|old_branch| {
                    let mut trial = Vec::new();
                    Check {
                        old: self.old,
                        new: self.new,
                        found: &mut trial,
                        depth: self.depth,
                    }
                    .schema(old_branch, branch, at);
                    trial.is_empty()
                });
                if !fits {
                    self.say(at, format!("alternative {i} fits none of the old ones"));
                }
            }
            return;
        }
        if let Some(types) = o.get("type") {
            let old_types = type_set(types);
            let new_types = n.get("type").map(type_set).unwrap_or_default();
            if new_types.is_empty() && !n.contains_key("const") && !n.contains_key("enum") {
                self.say(
                    at,
                    format!("the type is no longer {}", old_types.join(" or ")),
                );
            }
            for ty in &new_types {
                let allowed = old_types.contains(ty)
                    || (ty == "integer" && old_types.iter().any(|t| t == "number"));
                if !allowed {
                    self.say(at, format!("now {ty}, was {}", old_types.join(" or ")));
                }
            }
        }
        for keyword in ["const", "enum"] {
            if let Some(allowed) = o.get(keyword) {
                let allowed = values(allowed, keyword);
                let now = n
                    .get("const")
                    .map(|v| vec![v.clone()])
                    .or_else(|| n.get("enum").and_then(Value::as_array).cloned());
                match now {
                    Some(now) => {
                        for v in now.iter().filter(|v| !allowed.contains(v)) {
                            self.say(at, format!("{v} is not one of the old values"));
                        }
                    }
                    None => self.say(
                        at,
                        format!("no longer limited to {}", Value::Array(allowed)),
                    ),
                }
            }
        }
        if let Some(format) = o.get("format")
            && n.get("format") != Some(format)
        {
            self.say(at, format!("no longer of format {format}"));
        }
        let names = |schema: &Map<String, Value>| -> Vec<String> {
            schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let new_required = names(n);
        for name in names(o) {
            if !new_required.contains(&name) {
                self.say(at, format!("`{name}` is no longer required"));
            }
        }
        let empty = Map::new();
        let old_props = o
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let new_props = n
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        for (name, old_prop) in old_props {
            match new_props.get(name) {
                Some(new_prop) => self.schema(old_prop, new_prop, &format!("{at}.{name}")),
                None => self.say(at, format!("`{name}` is no longer described")),
            }
        }
        if o.get("additionalProperties") == Some(&Value::Bool(false)) {
            for name in new_props.keys().filter(|k| !old_props.contains_key(*k)) {
                self.say(
                    at,
                    format!("`{name}` is new where the old schema allows no other field"),
                );
            }
        }
        for keyword in ["items", "additionalProperties"] {
            if let (Some(old_inner), Some(new_inner)) = (o.get(keyword), n.get(keyword))
                && old_inner.is_object()
            {
                self.schema(old_inner, new_inner, &format!("{at}[{keyword}]"));
            }
        }
        for (keyword, tighter) in [
            ("minimum", true),
            ("maximum", false),
            ("minLength", true),
            ("maxLength", false),
            ("minItems", true),
            ("maxItems", false),
        ] {
            if let Some(bound) = o.get(keyword).and_then(Value::as_f64) {
                let now = n.get(keyword).and_then(Value::as_f64);
                let ok = now.is_some_and(|b| if tighter { b >= bound } else { b <= bound });
                if !ok {
                    self.say(at, format!("{keyword} {bound} no longer holds"));
                }
            }
        }
    }
}

/// `schema`, or what its `$ref` (into `document`) names.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    let mut schema = schema;
    for _ in 0..16 {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => match reference
                .strip_prefix('#')
                .and_then(|p| document.pointer(p))
            {
                Some(target) => schema = target,
                None => return schema,
            },
            None => return schema,
        }
    }
    schema
}

fn type_set(types: &Value) -> Vec<String> {
    match types {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn values(allowed: &Value, keyword: &str) -> Vec<Value> {
    match (keyword, allowed) {
        ("enum", Value::Array(vs)) => vs.clone(),
        (_, v) => vec![v.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = include_str!("../../docs/asyncapi.json");
    const RELEASED: &str = include_str!("../../docs/events/released.json");

    #[test]
    fn the_committed_document_is_what_the_code_generates() {
        let generated = serde_json::to_string_pretty(&asyncapi()).expect("serialises") + "\n";
        assert!(
            generated == COMMITTED,
            "docs/asyncapi.json differs from the event types in the code: regenerate it with \
             `cargo run -p todo-shared --example asyncapi > docs/asyncapi.json` (and if a \
             payload changed other than by new optional fields, bump its type's version)"
        );
    }

    #[test]
    fn the_payloads_are_compatible_with_the_last_release() {
        let released: Value = serde_json::from_str(RELEASED).expect("docs/events/released.json");
        let found = incompatibilities(&released, &asyncapi());
        assert!(
            found.is_empty(),
            "events would no longer satisfy consumers of the last release:\n  {}\nAn event type \
             that changes other than by new optional fields needs a new version \
             (EventType::version), published beside the old one for the transition window \
             (README, Consuming the events).",
            found.join("\n  ")
        );
    }

    #[test]
    fn every_type_has_a_message_on_its_topic() {
        let doc = asyncapi();
        for event in EventType::ALL {
            let key = message_key(event);
            assert_eq!(doc["components"]["messages"][&key]["name"], event.as_str());
            assert!(
                doc["channels"][event.topic()]["messages"][&key].is_object(),
                "{key}"
            );
            assert!(
                doc["channels"][DEAD_LETTER_TOPIC]["messages"][&key].is_object(),
                "{key}"
            );
            let envelope = &doc["components"]["messages"][&key]["payload"]["properties"];
            assert_eq!(envelope["dataschema"]["const"], event.dataschema().as_str());
            assert_eq!(envelope["source"]["const"], event.source());
        }
        assert_eq!(
            message_key(EventType::ReminderTriggered),
            "reminderTriggered"
        );
    }

    fn document_with(data: Value) -> Value {
        json!({"components": {"messages": {"m": {"payload": {"$ref": "#/components/schemas/D"}}},
               "schemas": {"D": data}}})
    }

    #[test]
    fn additive_changes_are_compatible_and_others_are_named() {
        let old = document_with(json!({"type": "object", "required": ["a"],
            "properties": {"a": {"type": "string"}, "n": {"type": "integer", "minimum": 0},
                           "s": {"enum": ["x", "y"]}}}));
        let added = document_with(json!({"type": "object", "required": ["a"],
            "properties": {"a": {"type": "string"}, "n": {"type": "integer", "minimum": 0},
                           "s": {"enum": ["x"]}, "b": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}));
        assert_eq!(incompatibilities(&old, &added), Vec::<String>::new());

        let breaking = document_with(json!({"type": "object",
            "properties": {"a": {"type": "integer"}, "n": {"type": "integer"},
                           "s": {"enum": ["x", "z"]}}}));
        let found = incompatibilities(&old, &breaking);
        assert!(
            found
                .iter()
                .any(|f| f.contains("`a` is no longer required")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|f| f == "m.a: now integer, was string"),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f.contains("minimum 0 no longer holds")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f.contains("\"z\" is not one of the old values")),
            "{found:?}"
        );
    }
}
