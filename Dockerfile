# One image for every Capas role (migrate, api, worker); the command picks the role. Two
# targets: `cpu` (the default) and `cuda`, for GPU workers: torch and TensorFlow with CUDA.
FROM python:3.11-slim AS runtime

# PYTHONSAFEPATH: nothing is imported from the working folder, whatever is mounted there.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONSAFEPATH=1 \
    PIP_NO_CACHE_DIR=1 \
    CAPAS_DATA_DIR=/data

WORKDIR /app
RUN useradd --create-home capas && mkdir -p /data && chown capas /data
VOLUME ["/data"]
EXPOSE 8000
CMD ["capas", "api", "--host", "0.0.0.0", "--port", "8000"]

# The project's files, copied into each target after its frameworks (which change least).
FROM scratch AS source
COPY pyproject.toml README.md alembic.ini /app/
COPY api /app/api
COPY core /app/core
COPY workers /app/workers
COPY ml /app/ml
COPY capas /app/capas
COPY migrations /app/migrations

# torch's PyPI wheel for Linux is its CUDA build, and TensorFlow's is `tensorflow[and-cuda]`
# in place of the project's tensorflow-cpu, at the same version; both bring their CUDA
# libraries as wheels, so the driver (the NVIDIA container toolkit) is all the host adds.
# Every other dependency is installed as pyproject.toml lists it.
FROM runtime AS cuda
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(dependency.replace('tensorflow-cpu', \
        'tensorflow[and-cuda]', 1) for dependency in tomllib.load(open('pyproject.toml', \
        'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=source /app ./
RUN pip install --no-deps -e .
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER capas
CMD ["capas", "worker", "-Q", "cuda", "--gpu", "0"]

# The CPU build of torch (PyPI's default wheel for Linux is the multi-GB CUDA build).
FROM runtime AS cpu
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY --from=source /app ./
RUN pip install -e .
USER capas
