"""Build gcide-v1, a second real-text corpus of a different kind: dictionary definitions.

Source: Debian's package ``dict-gcide`` (0.48.5+nmu2, GPL-2+), the GNU Collaborative
International Dictionary of English: Webster's Revised Unabridged Dictionary (1913) with
WordNet glosses, edited since by volunteers. Its dictd database (``gcide.dict.dz``, gzip,
40 MB of text) is turned into the format of realtext-v1: one paragraph of an entry (a
definition, a usage quotation, a note) a line, lowercase, tokens ``[a-z]+`` separated by
one space. Markup is removed: pronunciations ``\\Af*fect"\\``, source tags and etymologies
in brackets (``[1913 Webster]``, ``[L. affectus ...]``), cross-reference braces, author
citations (``--Milton.``); character codes keep their letters (``Ph[oe]nician`` ->
phoenician). Lines with fewer than 3 tokens are dropped.

The result keeps the dictionary's alphabetical order: an ordered corpus, unlike
realtext-v1's concatenated sources in their own order. About 4.0M tokens in 249k lines
(38k words of count >= 5).

    python scripts/build_gcide_corpus.py OUT.txt          # apt-get download dict-gcide
    python scripts/build_gcide_corpus.py OUT.txt --deb dict-gcide_0.48.5+nmu2_all.deb

The output is large and generated: keep it out of git (``$TMPDIR`` or ``../shared``).
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import os
import re
import subprocess
import tempfile

DICT = "usr/share/dictd/gcide.dict.dz"
FIRST_ENTRY = re.compile(r"^A \\A\\", re.M)  # the header (licence, database info) ends here
PRONUNCIATION = re.compile(r"\\[^\\\n]{0,80}\\")
CHAR_CODE = re.compile(r"\[([^\]\[\s]{1,6})\]")  # [oe], [=a], [.a], ['e], [sect]
BRACKETS = re.compile(r"\[[^\[\]]*\]")  # innermost bracket groups (tags, etymologies)
CITATION = re.compile(r"--\s*[A-Z][A-Za-z.']*(?:\s+[A-Z][A-Za-z.']*)*")
SYMBOLS = {"sect", "sharp", "flat", "deg", "frac12", "frac13", "frac14", "times", "dag"}
TOKEN = re.compile(r"[a-z]+")


def char_code(m: re.Match) -> str:
    code = m.group(1)
    if code.lower() in SYMBOLS or code.isdigit():
        return " "
    letters = re.sub(r"[^A-Za-z]", "", code)
    return letters if len(letters) <= 2 else " "  # [oe] -> oe, [=a] -> a; [aum] -> space


def paragraph_tokens(par: str) -> list[str]:
    par = PRONUNCIATION.sub(" ", par)
    par = CHAR_CODE.sub(char_code, par)
    while True:  # nested groups: remove the innermost until none is left
        par, n = BRACKETS.subn(" ", par)
        if not n:
            break
    par = CITATION.sub(" ", par)
    return TOKEN.findall(par.lower())


def build(text: str, out_path: str) -> tuple[int, int]:
    start = FIRST_ENTRY.search(text)
    if start is None:
        raise SystemExit("gcide.dict: the first entry (A \\A\\) was not found")
    lines = tokens = 0
    with open(out_path + ".tmp", "w", encoding="ascii") as out:
        for par in re.split(r"\n\s*\n", text[start.start() :]):
            words = paragraph_tokens(par)
            if len(words) >= 3:
                out.write(" ".join(words) + "\n")
                lines += 1
                tokens += len(words)
    os.replace(out_path + ".tmp", out_path)
    return lines, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output text file")
    ap.add_argument("--deb", help="a downloaded dict-gcide .deb (default: apt-get download)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        deb = args.deb
        if deb is None:
            subprocess.run(["apt-get", "download", "dict-gcide"], cwd=tmp, check=True)
            deb = glob.glob(os.path.join(tmp, "dict-gcide_*.deb"))[0]
        subprocess.run(["dpkg-deb", "-x", deb, os.path.join(tmp, "x")], check=True)
        # latin-1: a few cp1252 bytes (curly quotes) in an ASCII file; only [a-z] is kept
        with gzip.open(os.path.join(tmp, "x", DICT), "rt", encoding="latin-1") as f:
            text = f.read()
    lines, tokens = build(text, args.out)
    with open(args.out, "rb") as f:
        md5 = hashlib.md5(f.read()).hexdigest()
    print(f"{args.out}: {lines} lines, {tokens} tokens, md5 {md5} (from {os.path.basename(deb)})")


if __name__ == "__main__":
    main()
