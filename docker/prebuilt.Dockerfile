# The runtime image of ../Dockerfile around a `sluice` binary built on the host, so tests
# and quick local runs need not compile Rust inside Docker:
#
#   cargo build --bin sluice
#   docker build --network host -f docker/prebuilt.Dockerfile \
#       --build-arg SLUICE_BINARY=target/debug/sluice -t sluice .
#
# The binary must run on bookworm's glibc: build it on Debian bookworm or an older system.
# SLUICE_BINARY is relative to the build context (the repository root); .dockerignore lets
# only target/{debug,release,dist,docker}/sluice through.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/sluice sluice \
 && install -d -o sluice -g sluice /var/lib/sluice/featurestore /var/lib/sluice/server /var/lib/sluice/out
ARG SLUICE_BINARY=target/dist/sluice
COPY ${SLUICE_BINARY} /usr/local/bin/sluice
COPY jobs/ /opt/sluice/jobs/
USER sluice
WORKDIR /var/lib/sluice
ENTRYPOINT ["sluice"]
CMD ["--help"]
