#!/usr/bin/env bash
# Create (or update) a virtual environment with the pinned OpenMMLab stack and
# vitpose_plugin installed in editable mode.
#
#   bash scripts/setup_env.sh            # -> ./.venv
#   VENV=/path/to/venv bash scripts/setup_env.sh
#
# The slow step is mmcv 2.1.0: PyPI only has its sdist, and it must be compiled
# with its C++ ops (mmcv-lite breaks mmdet and mmpose.models). The built wheel is
# cached under $VITPOSE_CACHE_DIR (default ~/.cache/vitpose_plugin), keyed by the
# Python, torch and mmcv versions, so the second set-up takes a minute or two.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
CACHE_DIR="${VITPOSE_CACHE_DIR:-$HOME/.cache/vitpose_plugin}"

TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0
MMPOSE_VERSION=1.3.2
OPENMIM_VERSION=0.3.9

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

log "torch $TORCH_VERSION, torchvision $TORCHVISION_VERSION and build tools"
"${PIP[@]}" install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" \
  'numpy<2' 'setuptools>=77.0.3,<81' ninja wheel

# ---------------------------------------------------------------- mmcv (with ops)
mmcv_ok() {
  "$PY" - "$MMCV_VERSION" <<'EOF' >/dev/null 2>&1
import sys
import mmcv
from mmcv.ops import nms  # noqa: F401  (fails on mmcv-lite or a build without ops)
assert mmcv.__version__ == sys.argv[1], mmcv.__version__
EOF
}

if mmcv_ok; then
  log "mmcv $MMCV_VERSION with ops already installed"
else
  PY_TAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
  WHEEL_DIR="$CACHE_DIR/wheels/mmcv-$MMCV_VERSION-$PY_TAG-torch$TORCH_VERSION-$(uname -m)"
  if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    log "building mmcv $MMCV_VERSION with ops (about 9 minutes on 2 cores); cache: $WHEEL_DIR"
    BUILD_DIR="$(mktemp -d)"
    trap 'rm -rf "$BUILD_DIR"' EXIT
    # --no-build-isolation: setup.py imports torch, and an isolated build env gets a
    # setuptools without pkg_resources.
    "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation \
      "mmcv==$MMCV_VERSION" -d "$BUILD_DIR"
    tar -xzf "$BUILD_DIR/mmcv-$MMCV_VERSION.tar.gz" -C "$BUILD_DIR"
    SRC="$BUILD_DIR/mmcv-$MMCV_VERSION"
    # torch >= 2.6's ATen headers require C++20; mmcv 2.1.0's setup.py asks for C++17.
    sed -i "s/-std=c++17/-std=c++20/g" "$SRC/setup.py"
    mkdir -p "$WHEEL_DIR"
    # CFLAGS replaces Python's default flags, so keep -O3; -g0 halves the build time.
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      CFLAGS="-DNDEBUG -fwrapv -O3 -Wall -g0" \
      "${PIP[@]}" wheel --no-build-isolation --no-deps -w "$WHEEL_DIR" "$SRC"
  else
    log "using cached mmcv wheel from $WHEEL_DIR"
  fi
  "${PIP[@]}" install -q --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-*.whl
  # mmcv's own runtime requirements
  "${PIP[@]}" install -q addict packaging pyyaml yapf 'mmengine==0.10.7' 'opencv-python<4.12'
  mmcv_ok || { echo "mmcv $MMCV_VERSION was installed but 'from mmcv.ops import nms' fails" >&2; exit 1; }
fi

# ---------------------------------------------------------- the rest of the stack
log "OpenMMLab runtime requirements"
"${PIP[@]}" install -q -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt" \
  -r "$ROOT/requirements/deploy.txt"
"${PIP[@]}" install -q --no-deps "mmpose==$MMPOSE_VERSION" "openmim==$OPENMIM_VERSION"

log "vitpose_plugin (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

"$PY" - <<'EOF'
import mmcv, mmdet, mmengine, mmpose, torch
from mmcv.ops import nms  # noqa: F401
import vitpose_plugin
print(f'[setup] ok: torch {torch.__version__}, mmcv {mmcv.__version__}, '
      f'mmengine {mmengine.__version__}, mmdet {mmdet.__version__}, '
      f'mmpose {mmpose.__version__}, vitpose_plugin {vitpose_plugin.__version__}')
EOF
