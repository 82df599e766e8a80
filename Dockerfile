# One image for every homeloop service (worker, serving, scheduler, simulator, jobs) and for
# the MLflow server, which needs nothing the project's own dependencies lack.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PATH=/opt/venv/bin:$PATH \
    HOMELOOP_DATA_DIR=/var/lib/homeloop

RUN pip install --no-cache-dir "uv>=0.5" \
 && useradd --create-home --uid 10001 homeloop \
 && mkdir -p /var/lib/homeloop && chown homeloop /var/lib/homeloop

WORKDIR /app
# Dependencies first, from the lock file alone, so a code change does not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN uv sync --frozen --no-dev

# /var/lib/homeloop is where compose mounts the shared data volume: a new named volume
# takes this directory's owner, so the non-root user can write to it.
USER homeloop
ENTRYPOINT ["homeloop"]
CMD ["--help"]
