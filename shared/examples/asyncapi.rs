//! Prints the AsyncAPI document of the platform's events:
//! `cargo run -p todo-shared --example asyncapi > docs/asyncapi.json`.

fn main() -> Result<(), serde_json::Error> {
    let document = todo_shared::contract::asyncapi();
    println!("{}", serde_json::to_string_pretty(&document)?);
    Ok(())
}
