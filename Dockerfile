# shadowpipe images, built the way CI builds: scripts/bootstrap, then CMake.
#   docker build -t shadowpipe:dev .
# Stage "build" compiles; stage "runtime" carries the programs, the scripts
# and the shop example, with only the runtime libraries.
FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates sudo && rm -rf /var/lib/apt/lists/*
COPY scripts/bootstrap scripts/
COPY scripts/kafka scripts/kafka
RUN SHADOWPIPE_SKIP_KAFKA=1 scripts/bootstrap
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHADOWPIPE_BENCH=OFF \
 && cmake --build build --target all

FROM debian:12-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /opt/shadowpipe
COPY scripts/bootstrap scripts/
RUN scripts/bootstrap --runtime
COPY --from=build /src/build/bin/ /usr/local/bin/
COPY scripts/ scripts/
COPY examples/ examples/
COPY schemas/ schemas/
ENV SHADOWPIPE_BIN=/usr/local/bin
USER nobody
