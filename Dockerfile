# API and CPU worker images. The GPU worker builds FROM a TensorRT base (see target worker-gpu).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
# The API and the workers run as this unprivileged user. It owns /data, so a fresh named volume
# mounted there (compose's `artifacts`) is its to write; the code under /app stays root's, read-only.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/modelpress modelpress \
    && install -d -o modelpress -g modelpress /data
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY service ./service
COPY migrations ./migrations

# The API never imports torch or onnxruntime, so its image carries neither.
FROM base AS api
RUN pip install .
USER modelpress
EXPOSE 8000
# Two API processes (README "Serving under load"); h11 with a header limit (README "Request limits").
CMD ["uvicorn", "--factory", "service.main:create_app", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", \
     "--no-access-log", "--http", "h11", "--h11-max-incomplete-event-size", "32768"]

FROM base AS worker-cpu
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY worker ./worker
COPY engine ./engine
RUN pip install '.[worker]'
# Not root, so the sandbox confines each model with Landlock (Docker 23+ allows its system calls).
USER modelpress
CMD ["celery", "-A", "worker.app", "worker", "-Q", "cpu", "--concurrency", "2", "--loglevel", "INFO"]

# TensorRT (10.x in this base) comes from the base image, which also has CUDA and cuDNN. It gets the
# shared worker packages and onnxruntime-gpu only: never the CPU onnxruntime (the two conflict).
FROM nvcr.io/nvidia/tensorrt:25.10-py3 AS worker-gpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/modelpress modelpress \
    && install -d -o modelpress -g modelpress /data
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY service ./service
COPY migrations ./migrations
COPY worker ./worker
COPY engine ./engine
# torch from PyPI is the CUDA build; the base's TensorRT stays the one tensorrt.build imports.
RUN pip install '.[worker-common]' onnxruntime-gpu==1.31.1 \
    && python -c "import tensorrt, onnxruntime; assert 'CUDAExecutionProvider' in onnxruntime.get_available_providers()"
USER modelpress
# One task per process: a GPU build holds the device, and a fresh process frees it completely.
# One worker per GPU: compose gives each worker-gpu service one device (CUDA_VISIBLE_DEVICES inside).
CMD ["celery", "-A", "worker.app", "worker", "-Q", "gpu", "--concurrency", "1", "--max-tasks-per-child", "1", "--loglevel", "INFO"]
