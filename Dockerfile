# callguard worker image, for docker-compose.yml.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY contracts ./contracts
COPY streams ./streams
COPY features ./features
COPY models ./models
COPY sinks ./sinks
COPY simulator ./simulator
RUN pip install --no-cache-dir -c requirements.lock . \
    && useradd --system --home /var/lib/callguard callguard \
    && mkdir -p /var/lib/callguard && chown callguard /var/lib/callguard
USER callguard
ENV CALLGUARD_DATA_DIR=/var/lib/callguard/worker
ENTRYPOINT ["callguard"]
CMD ["worker"]
