# The server on its embedded defaults, reachable from outside the container.
# Set MEDIASERVER_ANNOUNCED_IP to the address browsers reach the host on, and publish the UDP
# and TCP ports one-to-one: media worker i listens on MEDIASERVER_RTC_PORT + i (UDP, and TCP for
# clients whose UDP is blocked) and ICE candidates carry that port. With MEDIASERVER_WORKERS=4:
# -p 40000-40003:40000-40003/udp -p 40000-40003:40000-40003/tcp.
# With TURN for networks that allow only outbound TCP or TLS: docs/examples/compose.yaml runs this
# image and Debian's coturn side by side (MEDIASERVER_TURN_URLS, MEDIASERVER_TURN_SECRET).

# hls.js for the recording player and uPlot for the analytics dashboard, from the npm registry
# at build time (never at run time).
FROM node:20-bookworm-slim AS player
RUN npm install --silent --no-audit --no-fund --prefix /npm hls.js@1.6 uplot@1.6

FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY mediaserver mediaserver
COPY signaling signaling
COPY recorder recorder
COPY benchmarks benchmarks
COPY web_client web_client
COPY --from=player /npm/node_modules/hls.js/dist/hls.min.js web_client/vendor/hls.min.js
COPY --from=player /npm/node_modules/uplot/dist/uPlot.iife.min.js \
     /npm/node_modules/uplot/dist/uPlot.min.css web_client/vendor/
# Editable: the server serves web_client/ from beside its packages (signaling/config.py).
# (a compiler for the C parts of the packet path, mediaserver/native/, removed after the build)
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev && \
    pip install --no-cache-dir -e . && \
    apt-get purge -y -qq gcc libc6-dev && apt-get autoremove -y -qq && rm -rf /var/lib/apt/lists/* && \
    useradd --system --home /app mediaserver && \
    mkdir -p /data && chown mediaserver /data
USER mediaserver
ENV MEDIASERVER_HOST=0.0.0.0 \
    MEDIASERVER_PORT=8080 \
    MEDIASERVER_RTC_PORT=40000 \
    MEDIASERVER_WORKERS=2 \
    MEDIASERVER_DATA_DIR=/data
EXPOSE 8080/tcp 40000-40001/udp 40000-40001/tcp
VOLUME ["/data"]
CMD ["mediaserver", "serve"]
