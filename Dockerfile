# The server on its embedded defaults, reachable from outside the container.
# Set MEDIASERVER_ANNOUNCED_IP to the address browsers reach the host on, and publish the UDP
# port one-to-one (-p 40000:40000/udp): ICE candidates carry that port.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY mediaserver mediaserver
COPY signaling signaling
COPY recorder recorder
COPY benchmarks benchmarks
COPY web_client web_client
RUN pip install --no-cache-dir . && useradd --system --home /app mediaserver && \
    mkdir -p /data && chown mediaserver /data
USER mediaserver
ENV MEDIASERVER_HOST=0.0.0.0 \
    MEDIASERVER_PORT=8080 \
    MEDIASERVER_RTC_PORT=40000 \
    MEDIASERVER_DATA_DIR=/data
EXPOSE 8080/tcp 40000/udp
VOLUME ["/data"]
CMD ["mediaserver", "serve"]
