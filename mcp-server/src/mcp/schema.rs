//! The JSON Schemas of the tools' arguments and results, in JSON Schema 2020-12 vocabulary only
//! ([`todo_shared::schema::standardise`]: no schemars integer formats, no type unions), so that
//! strict validators (Ajv in the TypeScript SDK, the Inspector and the conformance suite) take
//! them without a warning.

use std::sync::Arc;

use rmcp::handler::server::common::schema_for_input;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use todo_shared::schema::standardise;

/// The input schema of a tool whose arguments are `T`.
pub fn input<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    // The argument types are fixed at compile time; a failure here is a programming error
    // caught by the first test that lists the tools.
    let schema = schema_for_input::<T>().unwrap_or_else(|e| {
        panic!(
            "invalid input schema for {}: {e}",
            std::any::type_name::<T>()
        )
    });
    standard(&schema)
}

/// The output schema of a tool whose results are `T`.
pub fn output<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    let schema = schema_for_output::<T>();
    standard(&schema)
}

/// `schema` in the standard vocabulary ([`todo_shared::schema`]).
fn standard(schema: &JsonObject) -> Arc<JsonObject> {
    let mut schema = schema.clone();
    standardise(&mut schema);
    Arc::new(schema)
}
