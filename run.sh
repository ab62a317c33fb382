#!/usr/bin/env bash
# One entry point for newcomers and CI. Creates .venv (Python 3.11) on first use, installs the pinned
# requirements (CPU torch first, so nothing pulls CUDA wheels), then:
#   bash run.sh study [--profile ml100k] [more helpers.study options]   run notebooks 01..06, HTML reports
#   bash run.sh test  [pytest options]                                  run the test suite
#   bash run.sh lab   [jupyter lab options]                             JupyterLab on notebooks/
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.requirements.sha"
  local want
  want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[setup] installing requirements (a few minutes the first time; log in $VENV/install.log)"
    # torch first and pinned: the CPU build; any other pin pulls gigabytes of CUDA wheels
    "$VENV/bin/pip" install -q torch==2.13.0 >"$VENV/install.log" 2>&1 \
      && "$VENV/bin/pip" install -q -r requirements.txt >>"$VENV/install.log" 2>&1 \
      && "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e . >>"$VENV/install.log" 2>&1 \
      || { grep -v '^WARNING: Location' "$VENV/install.log" | tail -30; echo "[setup] install failed"; exit 1; }
    echo "$want" >"$stamp"
  fi
  export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TRANSFORMERS_OFFLINE=${TRANSFORMERS_OFFLINE:-1}
  export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
  # one BLAS/torch kernel family wherever the CPU runs it, so numbers match across machines of this
  # kind (docs/reproducibility.md); notebooks import numpy before helpers, so it is set here too
  if grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo 2>/dev/null; then
    export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell} ATEN_CPU_CAPABILITY=${ATEN_CPU_CAPABILITY:-avx2}
  fi
  # model-loading bars of transformers render as empty widgets in executed notebooks
  export HF_HUB_DISABLE_PROGRESS_BARS=${HF_HUB_DISABLE_PROGRESS_BARS:-1}
}

cmd=${1:-help}
shift || true
case "$cmd" in
  study) setup; exec "$VENV/bin/python" -m helpers.study "$@" ;;
  test)  setup; exec "$VENV/bin/python" -m pytest "$@" ;;
  lab)   setup
         # JupyterLab runs each notebook's kernel in notebooks/; helpers is installed, so imports work there.
         # The kernel is this environment's python3 (the notebooks' kernelspec). Root needs --allow-root.
         root=(); [ "$(id -u)" = 0 ] && root=(--allow-root)
         echo "[lab] starting JupyterLab on notebooks/; open the http://127.0.0.1:... URL it prints (Ctrl-C stops it)"
         exec "$VENV/bin/jupyter" lab --notebook-dir=notebooks --ip=127.0.0.1 --no-browser "${root[@]}" "$@" ;;
  setup) setup ;;
  *) echo "usage: bash run.sh study [--profile smoke|ml100k|paper] | bash run.sh test [pytest args] | bash run.sh lab | bash run.sh setup"; exit 2 ;;
esac
