#!/usr/bin/env bash
# Idempotent, prompt-free set-up for a fresh clone on Debian bookworm (run as root or with sudo).
# Installs only what is missing: Debian's chromium (browser tests), the Vulkan loader and Mesa lavapipe
# from bookworm-backports (WebGPU on CPU; bookworm's own Mesa 22 is too old for Dawn), and npm
# dependencies from the committed lockfile. A second run does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo -n"; fi
log() { printf '[bootstrap] %s\n' "$*" >&2; }

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
lavapipe_ok() {
  [ -f /usr/share/vulkan/icd.d/lvp_icd.json ] || return 1
  local v; v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  # Dawn needs Mesa >= 23 (shaderUniform*ArrayDynamicIndexing); 22.x from bookworm fails.
  [ -n "$v" ] && dpkg --compare-versions "$v" ge 23
}

apt_updated=0
apt_update() { if [ $apt_updated = 0 ]; then $SUDO apt-get update -qq; apt_updated=1; fi; }

if command -v apt-get >/dev/null 2>&1 && [ "${FEDGE_SKIP_APT:-0}" != "1" ]; then
  if ! have_pkg chromium; then
    log "installing Debian chromium"
    apt_update
    $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
  if ! have_pkg libvulkan1 || ! lavapipe_ok; then
    log "installing Vulkan loader and Mesa lavapipe from bookworm-backports"
    if [ -f /etc/os-release ] && grep -q 'VERSION_CODENAME=bookworm' /etc/os-release; then
      if [ ! -f /etc/apt/sources.list.d/fedge-backports.sources ]; then
        uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
        [ -n "$uri" ] || uri="http://deb.debian.org/debian"
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" |
          $SUDO tee /etc/apt/sources.list.d/fedge-backports.sources >/dev/null
        apt_updated=0
      fi
      apt_update
      $SUDO apt-get install -y -qq --no-install-recommends libvulkan1 >/dev/null
      $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers >/dev/null
    else
      apt_update
      $SUDO apt-get install -y -qq --no-install-recommends libvulkan1 mesa-vulkan-drivers >/dev/null
    fi
  fi
fi

# npm dependencies from the lockfile. `npm ci` refuses this registry's lockfile (other platforms'
# optional binaries are absent), `npm install` installs the locked versions and leaves it unchanged.
stamp=node_modules/.fedge-bootstrap
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  log "installing npm dependencies from package-lock.json"
  ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --loglevel=error
  touch "$stamp"
fi

# Local settings and secrets for `wrangler dev` (the dev environment): generated once, never committed.
if [ ! -f .dev.vars ]; then
  log "writing .dev.vars (local API key and admin token)"
  node -e '
    const c = require("node:crypto");
    const k = "fk_dev_" + c.randomBytes(24).toString("base64url");
    const a = "fa_" + c.randomBytes(32).toString("base64url");
    require("node:fs").writeFileSync(".dev.vars", `FEDGE_ENV=local\nFEDGE_DEV_API_KEY=${k}\nFEDGE_ADMIN_TOKEN=${a}\n`, { mode: 0o600 });
  '
fi
# wrangler.toml's [vars] are production's; the local environment is set here (older .dev.vars lack the line).
if ! grep -q '^FEDGE_ENV=' .dev.vars; then
  log "adding FEDGE_ENV=local to .dev.vars"
  printf 'FEDGE_ENV=local\n' >>.dev.vars
fi

# The edge's own Ed25519 key (a 32-byte seed, base64url) that signs check-in receipts; production's comes from
# `npm run provision` (wrangler secret). Generated once: devices pin its public key, so it must not change on a rerun.
if ! grep -q '^FEDGE_EDGE_SIGNING_KEY=' .dev.vars; then
  log "adding FEDGE_EDGE_SIGNING_KEY (the edge's receipt signing key) to .dev.vars"
  node -e 'require("node:fs").appendFileSync(".dev.vars", `FEDGE_EDGE_SIGNING_KEY=${require("node:crypto").randomBytes(32).toString("base64url")}\n`)'
fi

# Seed models (MNIST MLPs, fp32 + int8 ONNX) built by the project; a no-op when they are current. Deploying does
# not need them (FEDGE_SKIP_MODELS=1, set by `npm run deploy`/`provision`).
if [ "${FEDGE_SKIP_MODELS:-0}" != "1" ]; then
  node_modules/.bin/node scripts/build-models.ts
fi
