# The Conveyor image: each step of a compiled Kubeflow pipeline runs in it
# (`python -m conveyor.entrypoint PIPELINE --node ID ...`), and so does the model server
# (`python -m conveyor.serving`, configured by MODEL_NAME, MODEL_BASE, HOST, PORT, ...).
#
#   docker build -t conveyor:0.1.0 .
#   docker build -t conveyor:0.1.0-torch --build-arg EXTRAS=torch,postgres,s3 .
#   docker run --rm -p 8501:8501 -v /models:/models -e MODEL_NAME=penguin \
#       -e MODEL_BASE=/models/penguin conveyor:0.1.0 python -m conveyor.serving
#
# Put your pipeline file and its modules in an image built FROM this one (COPY them to
# /app/pipelines, say) and compile with `--source /app/pipelines/pipeline.py`.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

# The pip extras to install (pyproject.toml [project.optional-dependencies]).
ARG EXTRAS=sklearn,serving,postgres,s3

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CONVEYOR_HOME=/var/lib/conveyor \
    HOST=0.0.0.0 \
    PORT=8501

WORKDIR /app
# Installed from a copy outside the working directory, removed once installed: the steps
# import the installed package (its wheel's files), never a source tree that shadows it.
COPY pyproject.toml README.md /tmp/conveyor/
COPY conveyor /tmp/conveyor/conveyor
RUN pip install "/tmp/conveyor[${EXTRAS}]" \
    && rm -rf /tmp/conveyor \
    && useradd --create-home --uid 1000 conveyor \
    && mkdir -p "${CONVEYOR_HOME}" \
    && chown conveyor "${CONVEYOR_HOME}"
COPY examples ./examples

USER conveyor
EXPOSE 8501
# Kubeflow steps set their own command; `docker run IMAGE` alone serves models.
CMD ["python", "-m", "conveyor.serving"]
