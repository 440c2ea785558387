#!/usr/bin/env bash
# System tools the document tests need: pdflatex (report.tex -> report.pdf), pdftoppm/pdftotext (render and read
# the PDF) and headless Chromium (render report.html). Idempotent: installs (Debian/apt, --no-install-recommends)
# only when a tool is missing, and only as root; otherwise it says what is missing and leaves the machine alone
# (the tests then skip, or fail under CI=...). Measured on Debian 12 (2026-11-30): 174 MB of archives, 571 MB on
# disk, about 30 s with a warm mirror.
set -euo pipefail
PACKAGES="texlive-latex-base texlive-latex-recommended poppler-utils chromium"
missing=""
for tool in pdflatex pdftoppm pdftotext chromium; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: missing$missing; install as root: apt-get install --no-install-recommends $PACKAGES" >&2
    exit 0
fi
echo "system-deps: missing$missing; installing $PACKAGES" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
