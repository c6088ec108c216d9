# breakerbox container image: a multi-stage cargo build.
#   docker build -t breakerbox .
#   docker run -p 8080:8080 -v $PWD/breakerbox.toml:/etc/breakerbox/breakerbox.toml breakerbox
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY examples ./examples
COPY benches ./benches
RUN cargo build --release --locked --bin breakerbox

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/breakerbox --create-home breakerbox
COPY --from=build /src/target/release/breakerbox /usr/local/bin/breakerbox
COPY examples/breakerbox.toml /etc/breakerbox/breakerbox.toml
USER breakerbox
WORKDIR /var/lib/breakerbox
ENV BREAKERBOX_SERVER_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["breakerbox"]
CMD ["serve", "--config", "/etc/breakerbox/breakerbox.toml"]
