# sentryq in a container: Debian 12 slim, built with the steps CI runs (scripts/install-deps, then
# `meson setup build` and `ninja -C build`, as scripts/test does), run as a non-root user.
#
#   docker build -t sentryq .
#   docker run --rm -p 9000:9000 -v "$PWD/my.conf:/etc/sentryq/sentryq.conf:ro" \
#       -e SENTRYQ_REDIS_HOST=redis sentryq
#
# The configuration is /etc/sentryq/sentryq.conf (SENTRYQ_CONFIG); every key outside the upstreams
# list can be set by SENTRYQ_<SECTION>_<KEY>, and strings may use ${NAME} (secrets from the
# environment). The image's own copy is the sample configuration: mount yours over it.

FROM debian:bookworm-slim AS build
WORKDIR /src
COPY . .
RUN scripts/install-deps
RUN meson setup build && ninja -C build

FROM debian:bookworm-slim
COPY scripts/install-deps /usr/local/lib/sentryq/install-deps
RUN /usr/local/lib/sentryq/install-deps --runtime && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/sentryq --shell /usr/sbin/nologin sentryq \
    && install -d -o sentryq -g sentryq -m 0750 /var/lib/sentryq \
    && install -d -o root -g sentryq -m 0750 /etc/sentryq
COPY --from=build /src/build/sentryq /usr/local/bin/sentryq
COPY etc/sentryq.conf /etc/sentryq/sentryq.conf
RUN chown root:sentryq /etc/sentryq/sentryq.conf && chmod 0640 /etc/sentryq/sentryq.conf
ENV SENTRYQ_CONFIG=/etc/sentryq/sentryq.conf \
    SENTRYQ_LISTEN_ADDRESS=0.0.0.0 \
    SENTRYQ_REDIS_SPOOL_FILE=/var/lib/sentryq/sentryq.spool
USER sentryq
WORKDIR /var/lib/sentryq
EXPOSE 9000
STOPSIGNAL SIGTERM
# Ready: a new request would be accepted (not draining, queue under its bounds, Redis or room in
# the buffer). curl comes from install-deps --runtime.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${SENTRYQ_LISTEN_PORT:-9000}/api/relay/healthcheck/ready/" || exit 1
ENTRYPOINT ["/usr/local/bin/sentryq"]
