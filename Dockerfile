# The salesguard worker image (used by docker-compose.yml).
# The detectors' loops are compiled when the package is built (setup.py, numba's ahead-of-time
# compiler, which needs a C compiler): a wheel is built in the full Python image and installed
# in the slim one.
FROM python:3.11 AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY streams ./streams
COPY detectors ./detectors
COPY rules ./rules
COPY monitoring ./monitoring
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENV SALESGUARD_WEB_HOST=0.0.0.0 \
    SALESGUARD_DATA_DIR=/var/lib/salesguard
EXPOSE 6066
CMD ["salesguard", "worker"]
