#!/usr/bin/env bash
# Runs tools/scripts/gpu-check.mjs on a borrowed GPU machine that has no npm and no network, from what
# tools/scripts/gpu-pack.mjs put in .gpu-check/ (carried with the working tree). Run from the repository root:
#
#   bash tools/scripts/gpu-device.sh stage   # unpack the carried Node (.gpu-check/node) to /tmp/hyperllama-gpu
#   bash tools/scripts/gpu-device.sh run [gpu-check options]   # stage Node if carried, then the check
#
# `run` probes the machine (nvidia-smi, the Vulkan loader and driver files), unpacks the Vulkan loader where the
# machine has none, finds Node (HYPERLLAMA_NODE, the staged or carried one, else the machine's own if >= 20.16),
# unpacks the bundle to /tmp/hyperllama-gpu and runs it with --out "$OUT". Everything it prints also goes to
# $OUT/device.log; the check writes $OUT/gpu-check.json and $OUT/gpu-check.md. Node is killed at 560 s so the files
# come back inside a 600 s call.
set -u
cd "$(dirname "$0")/../.."
mode="${1:-run}"
shift || true
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/device.log") 2>&1
STAGE=/tmp/hyperllama-gpu
log() { echo "[gpu-device] $*"; }

# xz, else Python's lzma (the decoder handles the x86 filter); $1 → $2
unxz_to() {
  if command -v xz >/dev/null 2>&1; then xz -dc "$1" >"$2"; else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
}

stage_node() {
  [ -f .gpu-check/node/node.xz ] || return 0
  mkdir -p "$STAGE/bin"
  if unxz_to .gpu-check/node/node.xz "$STAGE/bin/node.tmp" && chmod +x "$STAGE/bin/node.tmp" &&
    mv "$STAGE/bin/node.tmp" "$STAGE/bin/node"; then
    log "staged $("$STAGE/bin/node" --version) at $STAGE/bin/node"
  else
    log "could not unpack .gpu-check/node/node.xz"
  fi
}

find_node() {
  local n
  for n in "${HYPERLLAMA_NODE:-}" "$STAGE/bin/node" "$(command -v node 2>/dev/null)"; do
    [ -n "$n" ] && [ -x "$n" ] || continue
    if "$n" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 16) ? 0 : 1)' 2>/dev/null; then
      echo "$n"
      return 0
    fi
  done
  return 1
}

probe() {
  log "machine: $(uname -srm); $(nproc) cores; $(grep -m1 MemTotal /proc/meminfo)"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm --format=csv,noheader || true
  else
    log "no nvidia-smi"
  fi
  log "libvulkan: $(ldconfig -p 2>/dev/null | grep -c 'libvulkan.so.1') in the linker cache"
  local d
  for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d /usr/share/glvnd/egl_vendor.d /usr/local/nvidia/share/glvnd/egl_vendor.d; do
    [ -d "$d" ] && log "$d: $(ls "$d" | tr '\n' ' ')"
  done
  log "system node: $(command -v node 2>/dev/null || echo none) $(node --version 2>/dev/null || true)"
}

vulkan_setup() {
  # Each carried package only where the machine lacks its library (the device README's recipe, made conservative).
  local f pkg lib n=0
  for f in .gpu-check/run/*.deb; do
    [ -e "$f" ] || continue
    pkg="$(basename "$f" | cut -d_ -f1)"
    case "$pkg" in
      libvulkan1) lib=libvulkan.so.1 ;;
      libegl1) lib=libEGL.so.1 ;;
      libglvnd0) lib=libGLdispatch.so.0 ;;
      libgles2) lib=libGLESv2.so.2 ;;
      libopengl0) lib=libOpenGL.so.0 ;;
      *) lib="$pkg" ;;
    esac
    if ! ldconfig -p 2>/dev/null | grep -q "$lib"; then
      dpkg -x "$f" / && log "unpacked $(basename "$f") (no $lib here)" && n=$((n + 1))
    fi
  done
  [ "$n" -gt 0 ] && ldconfig
  ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' ||
    log "no libvulkan.so.1 and no carried loader (.gpu-check/run/*.deb): Dawn will find no Vulkan adapter"
  # The driver's files where the loaders do not look by default (the device README's advice).
  if ! ls /usr/share/vulkan/icd.d/*nvidia* /etc/vulkan/icd.d/*nvidia* >/dev/null 2>&1; then
    local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    if [ -f "$icd" ]; then
      export VK_DRIVER_FILES="$icd" VK_ICD_FILENAMES="$icd"
      log "VK_DRIVER_FILES=$icd"
    fi
  fi
  local egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  if [ -f "$egl" ] && ! ls /usr/share/glvnd/egl_vendor.d/*nvidia* >/dev/null 2>&1; then
    export __EGL_VENDOR_LIBRARY_FILENAMES="$egl"
  fi
}

case "$mode" in
  stage)
    probe
    stage_node
    node_bin="$(find_node)" && log "node for the run: $node_bin" || log "no usable Node yet"
    ;;
  run)
    t0=$(date +%s)
    probe
    stage_node
    vulkan_setup
    node_bin="$(find_node)" || {
      log "no Node >= 20.16 here: carry .gpu-check/node (node tools/scripts/gpu-pack.mjs) in this call or a 'stage' call just before"
      exit 3
    }
    [ -f .gpu-check/run/gpu-check.tar.xz ] || {
      log "no .gpu-check/run/gpu-check.tar.xz: run node tools/scripts/gpu-pack.mjs here and carry .gpu-check/run"
      exit 3
    }
    rm -rf "$STAGE/bundle" && mkdir -p "$STAGE/bundle"
    unxz_to .gpu-check/run/gpu-check.tar.xz "$STAGE/bundle.tar" && tar -C "$STAGE/bundle" -xf "$STAGE/bundle.tar" || exit 3
    log "setup took $(($(date +%s) - t0)) s; node $node_bin ($("$node_bin" --version))"
    timeout -s KILL 560 "$node_bin" "$STAGE/bundle/gpu-check.mjs" --out "$OUT" "$@"
    rc=$?
    log "gpu-check exited with $rc after $(($(date +%s) - t0)) s"
    exit $rc
    ;;
  *)
    echo "usage: bash tools/scripts/gpu-device.sh stage|run [gpu-check options]" >&2
    exit 2
    ;;
esac
