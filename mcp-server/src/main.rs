use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = mcp_server::config::Config::parse();
    // stdout carries the MCP protocol in stdio mode: logs go to stderr. rmcp logs every request
    // at info, which is noise at any real request rate.
    let telemetry = todo_dapr::telemetry::init("todo-mcp", "info,rmcp=warn");
    let outcome = match &config.command {
        Some(command) => mcp_server::admin::run(&config, command).await,
        None => mcp_server::startup::run(config).await,
    };
    telemetry.shutdown();
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
