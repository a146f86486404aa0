# Image for the production shape: `pmp-gateway api` and `pmp-gateway worker` against
# configured Temporal, PostgreSQL and Redis (see docker-compose.yml).
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 pmp
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway_api ./gateway_api
COPY gateway_core ./gateway_core
COPY temporal_workers ./temporal_workers
COPY activities ./activities
COPY workflows ./workflows
RUN pip install --no-cache-dir .
USER pmp
ENV PMP_HOST=0.0.0.0 PMP_PORT=8080 PMP_LOG_FORMAT=json PMP_DATA_DIR=/home/pmp/data
EXPOSE 8080
ENTRYPOINT ["pmp-gateway"]
CMD ["api"]
