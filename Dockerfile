# One image for every Capas role (migrate, api, worker); the command picks the role.
FROM python:3.11-slim

# PYTHONSAFEPATH: nothing is imported from the working folder, whatever is mounted there.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONSAFEPATH=1 \
    PIP_NO_CACHE_DIR=1 \
    CAPAS_DATA_DIR=/data

WORKDIR /app

# The CPU build of torch (PyPI's default wheel for Linux is the multi-GB CUDA build).
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md alembic.ini ./
COPY api ./api
COPY core ./core
COPY workers ./workers
COPY ml ./ml
COPY capas ./capas
COPY migrations ./migrations
RUN pip install -e . && useradd --create-home capas && mkdir -p /data && chown capas /data

USER capas
VOLUME ["/data"]
EXPOSE 8000
CMD ["capas", "api", "--host", "0.0.0.0", "--port", "8000"]
