#!/usr/bin/env bash
# Rebuild the Cython kernels in place (after adding or editing kernels/*.pyx); a lock keeps parallel builds apart.
set -euo pipefail
cd "$(dirname "$0")/.."
exec flock /tmp/edudet-build.lock python3 setup.py -q build_ext --inplace
