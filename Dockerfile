# syntax=docker/dockerfile:1
# stampede images: one target per binary, all from one build.
#
#   docker build --target controller -t stampede/controller:0.1.0 \
#     --build-arg GIT_REVISION=$(git rev-parse HEAD) .
#   docker build --target agent      -t stampede/agent:0.1.0 .
#   docker build --target sim        -t stampede/sim:0.1.0 .
#
# The toolchain matches the one the project is built and tested with.

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-trixie AS build
# The controller records this in every run manifest (controller/build.rs);
# the build context has no .git.
ARG GIT_REVISION=unknown
ENV STAMPEDE_GIT_REVISION=${GIT_REVISION}
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        -p stampede-controller -p stampede-agent -p stampede-sim --bins \
    && mkdir -p /out \
    && cp target/release/controller target/release/agent target/release/stampede-sim /out/

FROM debian:trixie-slim AS runtime
# ca-certificates: https:// targets are verified against the system roots.
# tini: PID 1 that forwards SIGTERM (the controller then ends the phase and
# writes its results) and reaps children.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 stampede \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin stampede
# Numeric, so Kubernetes can check runAsNonRoot; OpenShift replaces it with
# an ID from the namespace's range (the binaries are world-executable).
USER 65532:65532

FROM runtime AS controller
COPY --from=build /out/controller /usr/local/bin/controller
EXPOSE 7600 9464
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/controller"]
CMD ["--help"]

FROM runtime AS agent
COPY --from=build /out/agent /usr/local/bin/agent
EXPOSE 9464
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/agent"]
CMD ["--help"]

FROM runtime AS sim
COPY --from=build /out/stampede-sim /usr/local/bin/stampede-sim
EXPOSE 8000
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/stampede-sim"]
CMD ["--listen", "0.0.0.0:8000"]
