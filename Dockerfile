# kgflow container image: docker build -t kgflow .   (docs/deployment.md, "Container image")
# Build stage: the same scripts/deps.sh as `make deps` (no package list of its own; checked by
# the ctest DockerfileMatchesDeps), then the release binary.
FROM debian:12-slim AS build
WORKDIR /src
COPY scripts/deps.sh scripts/deps.sh
# KG_DEPS_NO_VENV=1: the test-only Python tools are not needed to build.
RUN KG_DEPS_NO_VENV=1 scripts/deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build build --target kgflow

# Runtime stage: the binary and the Debian packages of the shared libraries it needs (its
# DT_NEEDED entries; libc6 and libgcc-s1 come with the base), plus ca-certificates for HTTPS
# to LLM providers. The ctest DockerfileMatchesDeps checks this list against the built binary.
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libstdc++6 libcmark-gfm0.29.0.gfm.6 libcmark-gfm-extensions0.29.0.gfm.6 libxml2 \
      libhiredis0.14 libsqlite3-0 libmariadb3 libicu72 libspdlog1.10 libssl3 \
      libtomlplusplus3 libfmt9 libcurl4 libsystemd0 libprometheus-cpp-core1.0 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/kgflow --create-home kgflow
COPY --from=build /src/build/kgflow /usr/local/bin/kgflow
USER 10001:10001
WORKDIR /var/lib/kgflow
# In a container the API and the worker health endpoint must listen on every interface.
ENV KG_DATA_DIR=/var/lib/kgflow KG_HTTP_ADDR=0.0.0.0:8080 KG_HEALTH_ADDR=0.0.0.0:8081
# 8080: API (web, all); 8081: health and /metrics of a worker node.
EXPOSE 8080 8081
# `kgflow start` by default; other commands as arguments (docker run IMAGE workers).
ENTRYPOINT ["/usr/local/bin/kgflow"]
CMD ["start"]
