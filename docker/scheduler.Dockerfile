# syntax=docker/dockerfile:1
# todo-scheduler: reminders and recurrences beside a Dapr sidecar. Build from the repository root:
#   docker build -f docker/scheduler.Dockerfile -t todo-scheduler:local .
# The runtime image has the binary, glibc and CA certificates, and nothing else (no shell); it runs
# as the distroless `nonroot` user (65532), which the Helm chart's securityContext expects.

ARG RUST_VERSION=1.95
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# The whole workspace (.dockerignore keeps it to the manifests and the crates' sources).
COPY . .
# Cache mounts keep the registry and the target dir between builds; the binary is copied out
# of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p todo-scheduler \
    && install -D -m 0755 target/release/todo-scheduler /out/todo-scheduler

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/todo-scheduler /usr/local/bin/todo-scheduler
USER 65532:65532
# Its one listener is the Dapr app port, which also serves the probes: all interfaces.
ENV TODO_SCHEDULER_LISTEN=0.0.0.0:8082
EXPOSE 8082
ENTRYPOINT ["/usr/local/bin/todo-scheduler"]
