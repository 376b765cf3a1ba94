#!/usr/bin/env bash
# Idempotent machine + project setup for Earshot on Debian 12 (run as root).
# Every step checks first and only does work when something is missing, so a
# second run finishes in seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_MAJOR=15
PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config"
TSDB_CONTROL="/usr/share/postgresql/${PG_MAJOR}/extension/timescaledb.control"
VENV="${ROOT}/.venv"
PYTHON="${PYTHON:-python3}"
APT_PACKAGES=(postgresql-${PG_MAJOR} postgresql-client-${PG_MAJOR} postgresql-server-dev-${PG_MAJOR}
  cmake gcc make dpkg-dev mosquitto mosquitto-clients libsndfile1 ca-certificates
  chromium fonts-dejavu-core)  # chromium: the dashboard's browser tests (Playwright drives it)

log() { printf '[setup] %s\n' "$*"; }

missing_packages() {
  local p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}

install_apt_packages() {
  local missing
  missing=$(missing_packages)
  [ -z "$missing" ] && return 0
  log "installing Debian packages: $(echo $missing | tr '\n' ' ')"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
  # Debian's postgresql package may create and start a default cluster; Earshot never uses it.
}

build_timescaledb() {
  [ -f "$TSDB_CONTROL" ] && return 0
  log "building TimescaleDB (Apache-only) from Debian trixie's source package"
  local work="${ROOT}/.build/timescaledb"
  local aptdir="${work}/apt"
  mkdir -p "${aptdir}/lists/partial" "${work}/src"
  # A private sources file and lists directory: the machine's own apt state is untouched.
  cat > "${aptdir}/sources.list" <<SRC
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
SRC
  local opts=(-o "Dir::Etc::SourceList=${aptdir}/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=${aptdir}/lists" -o "APT::Sandbox::User=root")
  apt-get "${opts[@]}" update -qq
  (cd "${work}/src" && apt-get "${opts[@]}" source --download-only timescaledb >/dev/null)
  local dsc
  dsc=$(ls "${work}"/src/timescaledb_*.dsc | head -n1)
  rm -rf "${work}/tree"
  dpkg-source --no-check -x "$dsc" "${work}/tree" >/dev/null
  (cd "${work}/tree" && ./bootstrap -DCMAKE_BUILD_TYPE=Release -DPG_CONFIG="$PG_CONFIG" \
      -DAPACHE_ONLY=1 -DSEND_TELEMETRY_DEFAULT=OFF -DUSE_TELEMETRY=OFF -DREGRESS_CHECKS=OFF \
      -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF >/dev/null \
    && make -C build -j"$(nproc)" install >/dev/null)
  [ -f "$TSDB_CONTROL" ] || { log "TimescaleDB build did not install ${TSDB_CONTROL}"; exit 1; }
}

# This machine's pip config lists extra local indexes that may not exist; pip warns once
# per package about them. Keep real errors, drop that noise.
quiet_pip() {
  "${VENV}/bin/pip" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

install_python_project() {
  local stamp="${VENV}/.earshot-installed"
  local want
  want=$(cat "${ROOT}/pyproject.toml" "${ROOT}/constraints.txt" | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  log "installing the Python project into .venv"
  [ -x "${VENV}/bin/python" ] || "$PYTHON" -m venv "$VENV"
  quiet_pip install -q --upgrade pip==25.3
  # torch first, on its own exact pin: it resolves to the local CPU build.
  quiet_pip install -q -c "${ROOT}/constraints.txt" "torch==2.13.0"
  quiet_pip install -q -c "${ROOT}/constraints.txt" -e "${ROOT}[dev]"
  echo "$want" > "$stamp"
}

[ "$(id -u)" = 0 ] || { log "run as root (it installs Debian packages)"; exit 1; }
install_apt_packages
build_timescaledb
install_python_project
log "ready"
