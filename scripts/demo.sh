#!/usr/bin/env bash
# One command to set up a fresh machine and run the main job:
#   bash scripts/demo.sh
# It installs Conveyor into .venv, runs the full penguin pipeline (through Evaluator, InfraValidator,
# Pusher and BulkInferrer) on the embedded default store
# (SQLite and local files under $CONVEYOR_HOME, ~/.conveyor unless set), runs it again to
# show the cache at work, and lists what ran.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -x .venv/bin/python ]; then
    rm -rf .venv
    python3 -m venv .venv
fi
.venv/bin/pip install -q -e '.[sklearn,serving]'

.venv/bin/conveyor run examples/penguin/pipeline.py
.venv/bin/conveyor run examples/penguin/pipeline.py
.venv/bin/conveyor runs --pipeline penguin-demo --limit 5
.venv/bin/conveyor artifacts --pipeline penguin-demo --type ModelEvaluation
.venv/bin/conveyor artifacts --pipeline penguin-demo --type PushedModel
