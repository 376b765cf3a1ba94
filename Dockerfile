# Production image: one image, three commands (`earshot api`, `earshot worker`,
# `earshot bridge`), plus `earshot migrate` as a one-shot; `dask scheduler|worker` (entrypoint
# override) for training on Dask. The install steps mirror
# scripts/setup.sh: torch first on its exact CPU pin, then the project under constraints.txt.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EARSHOT_HOST=0.0.0.0 \
    EARSHOT_DATA_DIR=/var/lib/earshot

RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1=1.2.* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/earshot earshot

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
# The CPU wheel index keeps torch a ~200 MB CPU build instead of gigabytes of CUDA.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
COPY service ./service
COPY detectors ./detectors
COPY ingest ./ingest
COPY migrations ./migrations
RUN pip install -c constraints.txt .

USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz').status == 200 else 1)"]
ENTRYPOINT ["earshot"]
CMD ["api"]
