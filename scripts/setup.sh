#!/usr/bin/env bash
# One-step set-up on a fresh machine: the Fashion-MNIST data (Debian package), a virtual
# environment in .venv, PyTorch (the CPU build 2.13.0 when no NVIDIA driver is present; with a
# GPU, an already-installed CUDA build is kept), invkit with its test and plot extras, and the example
# third-party plugin. Safe to run again: it only installs what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  echo "setup: installing Debian package dataset-fashion-mnist"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    $PIP install -q torch
  else
    # a bare `torch` requirement would pull a multi-GB CUDA build on a CPU-only machine
    $PIP install -q torch==2.13.0
  fi
fi
$PIP install -q -e '.[test,plot]'
# a second step, so that the plugin's `invkit` requirement is met by the checkout just installed
$PIP install -q ./examples/invkit-example-plugin
echo "setup: done ($(.venv/bin/python -c 'import torch, invkit; print("torch", torch.__version__, "invkit", invkit.__version__)'))"
