#!/usr/bin/env bash
# Installs everything exitscan needs on a Debian machine with Python >= 3.11:
# system packages (apt-get, as root or through sudo), a virtual environment in .venv,
# and the package itself. Idempotent: what is already there is not installed again.
#   scripts/install.sh          the program
#   scripts/install.sh --test   the program and what the test suite needs
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

# Debian packages: Tesseract (OCR) with English, fonts for pupil names in any script, and the
# British English word list (wbritish: /usr/share/dict/british-english) that RapidOCR's drafts
# are decoded against (exitscan.ocr.ctc).
apt_pkgs=(tesseract-ocr tesseract-ocr-eng fonts-dejavu-core wbritish)
if [ "$with_tests" = 1 ]; then
  # The scan simulator writes next steps in handwriting-like fonts.
  apt_pkgs+=(fonts-dkg-handwriting fonts-breip fonts-sjfonts fonts-comic-neue)
  # A real spreadsheet program opens results.xlsx in the tests (headless LibreOffice Calc).
  apt_pkgs+=(libreoffice-calc-nogui)
fi
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "Installing system packages: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python: prefer python3.11, else python3 (>= 3.11 is checked by pip from pyproject.toml).
PY=$(command -v python3.11 || command -v python3)
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get install -y -qq python3-venv >/dev/null
    "$PY" -m venv .venv
  fi
fi
# The ocr extra (RapidOCR, onnxruntime) reads handwriting best; the tests use it too.
extras="[ocr]"
[ "$with_tests" = 1 ] && extras="[ocr,test]"
# Reinstall only when the package's requirements changed since the last install.
stamp=".venv/.exitscan-installed"
want="$(sha256sum pyproject.toml | cut -c1-16)${extras}"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log=$(mktemp)
  if ! { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip \
         && .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "exitscan: installing the Python packages failed (messages above)" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  echo "$want" > "$stamp"
fi
.venv/bin/python -c "import exitscan, cv2, reportlab, pypdfium2, rapidocr, onnxruntime" \
  || { echo "exitscan: the Python packages did not install; see the messages above" >&2; exit 1; }
