# syntax=docker/dockerfile:1
# One image for every Larder binary: the `larder` CLI, `feature-server`,
# `registry-server` and `larder-operator`, in /usr/local/bin.
#
#   docker build -t ghcr.io/larder-dev/larder:0.1.0 .
#
# The tag is the workspace version (Cargo.toml [workspace.package]). The operator
# Deployment (config/manager, charts/larder) runs `larder-operator` from this image
# and passes the same image to the workloads it creates (--image / LARDER_IMAGE).

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the registry and target dir between builds; the binaries
# are copied out of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        -p larder-cli -p larder-feature-server -p larder-registry-server -p larder-operator \
    && mkdir -p /out \
    && cp target/release/larder target/release/feature-server \
          target/release/registry-server target/release/larder-operator /out/

# glibc and libgcc, no shell; runs as nonroot (uid/gid 65532).
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="larder" \
      org.opencontainers.image.description="Larder: a Kubernetes-native feature store (larder, feature-server, registry-server, larder-operator)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/ /usr/local/bin/
USER 65532:65532
CMD ["larder", "--help"]
