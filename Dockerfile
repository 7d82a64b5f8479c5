# shadowpipe images, built the way CI builds: scripts/bootstrap, then CMake.
#   docker build -t shadowpipe:dev .                   from source (target runtime)
#   scripts/docker image                               from build/bin (target prebuilt)
# Stage "runtime-base" has the runtime libraries, the scripts and the shop
# example; "prebuilt" adds programs already built on a Debian 12 machine (the
# suite's compose test uses it: no compiler in the image, seconds to build);
# "build" compiles and "runtime" adds what it compiled. The stages are in this
# order because Docker's classic builder builds every stage before the target.
FROM debian:12 AS runtime-base
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /opt/shadowpipe
COPY scripts/bootstrap scripts/
RUN scripts/bootstrap --runtime && rm -rf /var/lib/apt/lists/*
COPY scripts/ scripts/
COPY examples/ examples/
COPY schemas/ schemas/
ENV SHADOWPIPE_BIN=/usr/local/bin

FROM runtime-base AS prebuilt
COPY build/bin/shadow-executor build/bin/shadow-comparator build/bin/shadowctl \
     build/bin/shop-loadgen build/bin/shadow-replay /usr/local/bin/
USER nobody

FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates sudo && rm -rf /var/lib/apt/lists/*
COPY scripts/bootstrap scripts/
COPY scripts/kafka scripts/kafka
RUN SHADOWPIPE_SKIP_KAFKA=1 scripts/bootstrap
COPY . .
# Its own build folder: the context may carry programs built outside (prebuilt).
# Only the programs: the image runs no tests.
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHADOWPIPE_BENCH=OFF \
 && cmake --build /build --target shadow-executor shadow-comparator shadowctl shop-loadgen shadow-replay

FROM runtime-base AS runtime
COPY --from=build /build/bin/shadow-executor /build/bin/shadow-comparator /build/bin/shadowctl \
     /build/bin/shop-loadgen /build/bin/shadow-replay /usr/local/bin/
USER nobody
