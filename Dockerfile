# syntax=docker/dockerfile:1
# Multi-stage build: compile with the Rust toolchain, ship a small Debian runtime as a non-root user.
# The registry and target/ are BuildKit cache mounts: dependencies are compiled once per builder
# and kept, so a change to the server's sources rebuilds only the workspace's own crates.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin commerce --bin data-platform \
    && mkdir -p /out \
    && cp target/release/commerce target/release/data-platform /out/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /app commerce
WORKDIR /app
COPY --from=build /out/commerce /out/data-platform /usr/local/bin/
USER commerce
ENV BIND=0.0.0.0:8000 LOG_FORMAT=json
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS "http://127.0.0.1:${BIND##*:}/healthz" || exit 1
ENTRYPOINT ["commerce"]
CMD ["serve"]
