# The image every service of docker-compose.yml runs: one `distributor` command each.
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY distributor ./distributor
COPY worker ./worker
COPY templates ./templates
# The base dependencies only: every one has a wheel for x86-64 and arm64 (.ci/wheels.py
# checks), so the slim image needs no compiler. The embedded Redis (the `embedded` extra) is
# for one-machine installs; here DISTRIBUTOR_BROKER_URL names the Redis service.
RUN pip install --no-cache-dir -e . && useradd --create-home distributor \
    && mkdir -p /data && chown distributor /data
USER distributor
ENV DISTRIBUTOR_DATA_DIR=/data
EXPOSE 8000
CMD ["distributor", "serve", "--host", "0.0.0.0"]
