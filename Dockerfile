# Build: docker build -t pullcheck .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY benches ./benches
RUN cargo build --release --locked --bin pullcheck

# cc-debian12 has the C runtime rustls/ring need and nothing else; nonroot runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/pullcheck /usr/local/bin/pullcheck
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/pullcheck"]
CMD ["serve", "--tls-cert=/etc/pullcheck/tls/tls.crt", "--tls-key=/etc/pullcheck/tls/tls.key"]
