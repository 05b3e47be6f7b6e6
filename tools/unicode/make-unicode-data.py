#!/usr/bin/env python3
"""Writes src/MoeCluster.Model/Tokenization/Unicode/unicode-data.txt.gz: the Unicode Character Database facts the
managed normaliser needs (UAX #15 normalisation and per-code-point lowercasing), taken from Python's unicodedata.

Run with Debian's python3 (Unicode 14.0 in bookworm): `python3 tools/unicode/make-unicode-data.py`.
Sections (hex code points):
  v VERSION                 the Unicode version of the data
  c CP CCC                  canonical combining class, for every code point whose class is not 0
  d CP CP...                full canonical decomposition (NFD of the single code point), where it is not the code point
  k CP CP...                full compatibility decomposition (NFKD), where it differs from the canonical one
  p A B C                   primary composite: A followed by B composes to C (composition exclusions left out)
  l CP CP...                lowercase mapping of the single code point (full mapping, as Rust's char::to_lowercase)
Hangul syllables are algorithmic and not listed.
"""
import gzip
import os
import sys
import unicodedata

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "src", "MoeCluster.Model", "Tokenization", "Unicode", "unicode-data.txt.gz")


def hexes(text):
    return " ".join(f"{ord(ch):04X}" for ch in text)


def is_hangul_syllable(cp):
    return 0xAC00 <= cp <= 0xD7A3


def main():
    lines = [f"v {unicodedata.unidata_version}"]
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        ccc = unicodedata.combining(ch)
        if ccc:
            lines.append(f"c {cp:04X} {ccc}")
        if is_hangul_syllable(cp):
            continue
        nfd = unicodedata.normalize("NFD", ch)
        if nfd != ch:
            lines.append(f"d {cp:04X} {hexes(nfd)}")
        nfkd = unicodedata.normalize("NFKD", ch)
        if nfkd != nfd:
            lines.append(f"k {cp:04X} {hexes(nfkd)}")
        decomposition = unicodedata.decomposition(ch)
        if decomposition and not decomposition.startswith("<"):
            parts = [int(p, 16) for p in decomposition.split()]
            # A primary composite is a two-part canonical decomposition that NFC keeps (so not a composition exclusion).
            if len(parts) == 2 and unicodedata.normalize("NFC", ch) == ch:
                lines.append(f"p {parts[0]:04X} {parts[1]:04X} {cp:04X}")
        lower = ch.lower()
        if lower != ch:
            lines.append(f"l {cp:04X} {hexes(lower)}")
    data = ("\n".join(lines) + "\n").encode("ascii")
    with open(OUT, "wb") as raw:
        # mtime=0 keeps the file byte-identical from run to run.
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0, filename="") as out:
            out.write(data)
    print(f"{OUT}: {len(lines)} lines, Unicode {unicodedata.unidata_version}", file=sys.stderr)


if __name__ == "__main__":
    main()
