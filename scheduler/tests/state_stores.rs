//! The state store contract ([`todo_scheduler::contract`]) on the memory store and on Dapr's
//! Redis store through a real daprd (the SQL store's run is in `mcp-server/tests/scheduling.rs`).
//!
//! The daprd test starts its own sidecar, with no app, on the Redis and the daprd that
//! `scripts/test.sh` provides (`TODO_DAPRD`, `TODO_TEST_REDIS_HOST`).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use todo_dapr::DaprClient;
use todo_scheduler::contract;
use todo_scheduler::dapr::Sidecar;
use todo_scheduler::memory::MemoryStore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    contract::check(&MemoryStore::default(), "contract").await;
}

#[tokio::test]
async fn the_dapr_redis_store_keeps_the_contract() {
    let daprd = std::env::var("TODO_DAPRD")
        .expect("TODO_DAPRD is not set: run the tests with scripts/test.sh, which builds daprd");
    let redis = std::env::var("TODO_TEST_REDIS_HOST").expect(
        "TODO_TEST_REDIS_HOST is not set: run the tests with scripts/test.sh, which starts Redis",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    write_component(dir.path(), &redis);
    let sidecar = Daprd::start(&daprd, dir.path());
    let client =
        DaprClient::new(&format!("http://127.0.0.1:{}", sidecar.grpc_port), None).expect("client");
    let ready = tokio::time::timeout(
        Duration::from_secs(60),
        client.wait_ready(&CancellationToken::new()),
    )
    .await;
    assert!(
        matches!(ready, Ok(true)),
        "daprd did not become ready within 60 s; its log: {}",
        std::fs::read_to_string(&sidecar.log).unwrap_or_default()
    );
    let store = Sidecar {
        client,
        state_store: "statestore".to_owned(),
    };
    contract::check(&store, &format!("contract-{}", Uuid::new_v4().simple())).await;
}

fn write_component(dir: &Path, redis: &str) {
    let component = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: statestore\n\
         spec:\n  type: state.redis\n  version: v1\n  metadata:\n    - name: redisHost\n      \
         value: {redis}\n"
    );
    std::fs::write(dir.join("statestore.yaml"), component).expect("write the component");
}

/// A daprd with no app, killed when dropped.
struct Daprd {
    child: Child,
    grpc_port: u16,
    log: std::path::PathBuf,
}

impl Daprd {
    fn start(binary: &str, resources: &Path) -> Daprd {
        let grpc_port = free_port();
        let log = resources.join("daprd.log");
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(binary)
            .args(["--app-id", &format!("contract-{}", Uuid::new_v4().simple())])
            .args(["--dapr-http-port", &free_port().to_string()])
            .args(["--dapr-grpc-port", &grpc_port.to_string()])
            .args(["--dapr-internal-grpc-port", &free_port().to_string()])
            .args(["--resources-path", &resources.display().to_string()])
            .args(["--enable-metrics=false", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("start daprd");
        Daprd {
            child,
            grpc_port,
            log,
        }
    }
}

impl Drop for Daprd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}
