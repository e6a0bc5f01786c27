# syntax=docker/dockerfile:1
#
# cachesync image: a Swift build stage on Debian bookworm, and a slim bookworm
# runtime that holds only the shared libraries the binary needs.
# `scripts/check-deploy.sh BINARY` checks that the runtime apt-get line below
# lists exactly the Debian packages of the binary's shared libraries.

ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${SWIFT_IMAGE} AS build
WORKDIR /src

# Build dependencies come from the same install script as a developer machine.
COPY scripts/ scripts/
RUN scripts/install.sh --build-only \
    && rm -rf /var/lib/apt/lists/*

# The builder's Package.resolved, when its tree has one (git-ignored, so a fresh clone has none): the image then
# gets the dependency versions that tree built and tested with; without it SwiftPM resolves afresh.
COPY Package.swift Package.resolved* ./
COPY Sources/ Sources/
COPY Tests/ Tests/
RUN --mount=type=cache,target=/src/.build \
    swift build -c release --static-swift-stdlib --product cachesync \
    && install -D -m 0755 "$(swift build -c release --show-bin-path)/cachesync" /out/cachesync \
    && strip /out/cachesync \
    && /out/cachesync version

FROM ${DEBIAN_IMAGE} AS runtime

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        libbson-1.0-0 \
        libhiredis0.14 \
        libmongoc-1.0-0 \
        libssl3 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 cachesync \
    && useradd --system --uid 10001 --gid cachesync --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin cachesync \
    && mkdir -p /etc/cachesync

COPY --from=build /out/cachesync /usr/local/bin/cachesync

ENV CACHESYNC_CONFIG=/etc/cachesync/cachesync.yaml
# No libmongoc performance counters in /dev/shm: a file per process, left behind when one is killed (scripts/env.sh).
ENV MONGOC_DISABLE_SHM=1
USER 10001:10001
EXPOSE 9464
ENTRYPOINT ["cachesync", "run"]
CMD ["--config", "/etc/cachesync/cachesync.yaml"]
