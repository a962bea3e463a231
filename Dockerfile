# Multi-stage build: compile with the Rust toolchain, ship a small Debian runtime as a non-root user.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin commerce --bin data-platform

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /app commerce
WORKDIR /app
COPY --from=build /src/target/release/commerce /src/target/release/data-platform /usr/local/bin/
USER commerce
ENV BIND=0.0.0.0:8000 LOG_FORMAT=json
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS "http://127.0.0.1:${BIND##*:}/healthz" || exit 1
ENTRYPOINT ["commerce"]
CMD ["serve"]
