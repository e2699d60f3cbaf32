# syntax=docker/dockerfile:1
#
# rvbbit's container image: one binary serves every role (`rvbbit serve`, `rvbbit serve sql`,
# `rvbbit worker`, a one-off `rvbbit run`), chosen by the command. See docs/deploy.md.
#
#   docker build -t rvbbit:dev .
#   docker run --rm rvbbit:dev --version
#
# Never built here: the machine this repository is developed on has no Docker engine. CI checks
# this file offline (scripts/check-deploy.sh: the paths it copies exist and are not excluded by
# .dockerignore, the stages and user are as documented); the binary it builds is the one
# scripts/bench-dist.sh measures.

# ---- build: the `dist` profile (LTO, one codegen unit, stripped; Cargo.toml) ----
# The toolchain the workspace is developed and tested with (rustc 1.95), on the same Debian
# release as the runtime stage, so the binary's glibc matches.
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
# The workspace: manifests, lock file and the crates (every member must be present for
# `--locked`). Nothing else is needed to build the binary: tests, docs and examples stay out
# (.dockerignore).
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# Cache mounts keep the registry and the target directory between builds (BuildKit); the binary
# is copied out of the cached target directory, which does not persist into the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist -p rvbbit --locked \
    && install -D -m 0755 target/dist/rvbbit /out/rvbbit

# ---- runtime: Debian slim, not distroless, because cascades' shell cells need /bin/sh and bash ----
FROM debian:bookworm-slim AS runtime
# ca-certificates: TLS to LLM providers, PostgreSQL with sslmode=verify-full, S3 (rustls reads the
# system store). tini: PID 1 that forwards SIGTERM to rvbbit (workers drain on it) and reaps the
# orphans shell cells may leave. Nothing else: the binary links only glibc, libm and libgcc_s.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/*
# A fixed, non-root uid/gid (10001) so Kubernetes' runAsNonRoot can check it and volumes can be
# chowned ahead of time. Its home is the working directory: the default SQLite store and the spill
# files (.rvbbit/) are written there, so mount a volume on it (compose and k8s do).
RUN groupadd --system --gid 10001 rvbbit \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/rvbbit --create-home \
       --shell /usr/sbin/nologin rvbbit
COPY --from=build /out/rvbbit /usr/local/bin/rvbbit
USER 10001:10001
WORKDIR /var/lib/rvbbit
ENV NO_COLOR=1
# 5050: `rvbbit serve` (HTTP API, /healthz, /readyz, /metrics); 15432: `rvbbit serve sql` (pgwire).
EXPOSE 5050 15432
# The same probe for every role: the store answers at the right schema, and the queue when
# `queue.url` is set (exit 0 healthy, 5 store or queue down). No provider key is required, so a
# deployment of deterministic cascades is healthy without one; compose and k8s add HTTP probes.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["rvbbit", "health", "--no-provider", "--quiet"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/rvbbit"]
CMD ["--help"]
