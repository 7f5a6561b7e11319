# The Sluice image: the `sluice` command and the example jobs on Debian bookworm.
#
#   docker build --network host -t sluice .
#
# The first stage compiles Sluice with the dist profile (LTO, one codegen unit: the fastest
# binary, and the slowest build). docker/prebuilt.Dockerfile puts a binary built on the host
# into the same runtime image without compiling inside Docker.
ARG RUST_IMAGE=rust:1-bookworm
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --profile dist --locked --bin sluice \
 && cp target/dist/sluice /usr/local/bin/sluice

FROM debian:bookworm-slim AS runtime
# ca-certificates: the AWS SDK reads the system's CA store to reach real AWS endpoints.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/sluice sluice \
 && install -d -o sluice -g sluice /var/lib/sluice/featurestore /var/lib/sluice/server /var/lib/sluice/out
COPY --from=build /usr/local/bin/sluice /usr/local/bin/sluice
COPY jobs/ /opt/sluice/jobs/
USER sluice
WORKDIR /var/lib/sluice
ENTRYPOINT ["sluice"]
CMD ["--help"]
