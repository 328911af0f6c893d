# syntax=docker/dockerfile:1
# todo-mcp: the MCP server. Build from the repository root:
#   docker build -f docker/mcp-server.Dockerfile -t todo-mcp:local .
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
    cargo build --release --locked -p mcp-server \
    && install -D -m 0755 target/release/todo-mcp /out/todo-mcp

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/todo-mcp /usr/local/bin/todo-mcp
USER 65532:65532
# In a container the server speaks HTTP on all interfaces; the Dapr app port (subscriptions)
# stays on loopback, where its sidecar calls it. Every setting can be overridden (see README).
ENV TODO_TRANSPORT=http \
    TODO_LISTEN=0.0.0.0:8080 \
    TODO_APP_LISTEN=127.0.0.1:8081
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/todo-mcp"]
