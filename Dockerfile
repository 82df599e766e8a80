# One image for every homeloop service (worker, serving, scheduler, simulator, jobs, MLflow).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    PATH=/opt/venv/bin:$PATH

RUN pip install --no-cache-dir "uv>=0.5" \
 && useradd --create-home --uid 10001 homeloop \
 && mkdir -p /var/lib/homeloop && chown homeloop /var/lib/homeloop

WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN uv sync --frozen --no-dev

USER homeloop
ENTRYPOINT ["homeloop"]
CMD ["--help"]
