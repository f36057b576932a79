# The salesguard worker image (used by docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY detectors ./detectors
COPY rules ./rules
COPY monitoring ./monitoring
RUN pip install --no-cache-dir . \
    # compile the detectors' numba loops into their cache now, not at every worker start
    && python -c "import detectors"
ENV SALESGUARD_WEB_HOST=0.0.0.0 \
    SALESGUARD_DATA_DIR=/var/lib/salesguard
EXPOSE 6066
CMD ["salesguard", "worker"]
