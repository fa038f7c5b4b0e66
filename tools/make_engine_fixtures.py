#!/usr/bin/env python3
"""Generate Damda's Gemma 3 tokenizer and logits test fixtures from the independent NumPy reference.

Usage: python3 tools/make_engine_fixtures.py [--model PATH] [--out-dir DIR] [--only {all,tokenizer,logits}]

Writes (relative to --out-dir, default: the repository root):
  Tests/DamdaTokenizerTests/Fixtures/gemma3_tokenizer_cases.json
      {"model_sha256", "generator", "cases": [{"text", "ids"}]}   ids = encode(text), BOS added,
      control tokens parsed (parse_special=True).
  Tests/DamdaEngineTests/Fixtures/gemma3_logits.json
      {"model_sha256", "generator", "dtype": "float64", "prompts": [{"name", "text", "ids",
       "top": [[id, logit]] (64 highest at the last position, descending),
       "probe": [[id, logit]] (512 ids from RandomState(1234), same ids for every prompt),
       "greedy": [32 ids] (argmax continuation through the reference's KV cache)}]}

The reference is ../shared/tools/gemma3_ref.py (relative to the repository root); logits are
computed in float64 and rounded to 6 decimals. Everything is deterministic (fixed seeds, fixed
data lines). The model defaults to $DAMDA_MODEL or ~/.cache/damda/models/gemma-3-270m-q4_k_m.gguf.
Loading the reference takes tens of seconds; the logits part takes several minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(REPO, "..", "shared"))
sys.path.insert(0, os.path.join(SHARED, "tools"))
import gemma3_ref  # noqa: E402

GENERATOR = "tools/make_engine_fixtures.py"
DEFAULT_MODEL = os.path.expanduser(
    os.environ.get("DAMDA_MODEL", "~/.cache/damda/models/gemma-3-270m-q4_k_m.gguf"))
TOKENIZER_OUT = "Tests/DamdaTokenizerTests/Fixtures/gemma3_tokenizer_cases.json"
LOGITS_OUT = "Tests/DamdaEngineTests/Fixtures/gemma3_logits.json"

KORQUAD_QA = os.path.join(SHARED, "data", "korquad", "dev_qa.jsonl")
KORQUAD_DOCS = os.path.join(SHARED, "data", "korquad", "dev_docs.jsonl")
EASYLAW_DOCS = os.path.join(SHARED, "data", "domain", "easylaw_finance_docs.jsonl")

N_TOP = 64
N_PROBE = 512
PROBE_SEED = 1234
N_GREEDY = 32

RAG_TEMPLATE = (
    "아래 [내용]을 참고해서 [질문]에 대해 답변해주세요. 만약 질문에 답변할 수 없으면 "
    "\"답변을 찾을 수 없습니다.\"로 대답하세요.\n[질문]\n{question}\n[내용]\n{paragraph}\n[답변]\n"
)
RAG_MIN_TOKENS, RAG_MAX_TOKENS = 450, 500

MIXED_CODE_TEXT = (
    "Here is a short note for the 서울 analytics team (ticket #4821, due 2024-03-15). "
    "The helper below computes a moving average over daily sales; revenue grew 12.5% "
    "to ₩1,234,567,890 last quarter.\n\n"
    "```python\n"
    "def moving_average(xs, k=3):\n"
    "    \"\"\"Return the k-point moving average of xs.\"\"\"\n"
    "    out = []\n"
    "    for i in range(len(xs) - k + 1):\n"
    "        out.append(sum(xs[i:i + k]) / k)\n"
    "    return out\n\n"
    "print(moving_average([10, 12.5, 9, 14, 20]))  # [10.5, 11.83, 14.33]\n"
    "```\n\n"
    "이 함수는 이동 평균을 계산합니다. 입력 리스트의 길이가 k보다 짧으면 빈 리스트를 반환해요. "
    "Can you explain, in one sentence, what happens when k equals 1?"
)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_jsonl(path: str):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def log(msg: str):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Tokenizer cases
# --------------------------------------------------------------------------------------

def handwritten_cases():
    c = []
    # Korean sentences: formal / informal / particles
    c += [
        "안녕하세요",
        "안녕하세요. 만나서 반갑습니다.",
        "안녕? 오늘 뭐 해?",
        "저는 서울에 살고 있습니다.",
        "나는 학교에 간다.",
        "그는 도서관에서 책을 읽었다.",
        "고양이가 밥을 먹어요.",
        "철수는 영희에게 꽃을 주었다.",
        "회의는 오후 세 시에 시작됩니다.",
        "이 제품의 가격은 얼마인가요?",
        "보험금을 청구하려면 어떤 서류가 필요한가요?",
        "대출 이자율이 너무 높아서 걱정이야.",
        "계좌 이체가 완료되었습니다. 감사합니다.",
        "먹었니? 아직 안 먹었어.",
        "ㅋㅋㅋㅋ 진짜 웃기다",
        "헐 대박... 그게 말이 돼?",
        "대한민국의 수도는 서울이다.",
        "한국어는 교착어로서 조사와 어미가 발달했다.",
        "국민건강보험공단에서 건강검진 안내문이 발송되었습니다.",
        "이것은 연필이고, 저것은 지우개입니다.",
        "밥 먹고 나서 산책하자!",
        "할머니께서 진지를 잡수셨습니다.",
        "선생님께 여쭤보겠습니다.",
        "뭐라고요?! 다시 말씀해 주시겠어요?",
        "한국의 전통 음식 세 가지를 알려주세요.",
        "대한민국의 수도는",
        "가나다라마바사아자차카타파하",
        "힣",
        "똠방각하",
        "뷁쀍퓛",
    ]
    # English
    c += [
        "Hello",
        "Hello, world!",
        "The capital of France is",
        "The quick brown fox jumps over the lazy dog.",
        "I can't believe it's not butter.",
        "HELLO WORLD IN ALL CAPS",
        "lowercase words only here",
        "Supercalifragilisticexpialidocious",
        "Mr. O'Neil's co-worker didn't re-enter the e-mail address.",
        "Well... maybe; maybe not?",
        "naïve café résumé coöperate",
    ]
    # mixed Korean + English
    c += [
        "오늘 meeting은 3시에 시작해요.",
        "Python으로 웹 크롤러를 만들어 봤어요.",
        "이 API의 response time이 너무 느려요.",
        "LLM 추론 엔진을 Swift로 구현합니다.",
        "GPU 메모리가 부족해서 OOM 에러가 났어요.",
        "Samsung Galaxy S24 Ultra는 정말 좋아요!",
        "K-pop과 K-drama가 global하게 인기다.",
        "한국Korea한국Korea",
    ]
    # digits and numbers
    c += [
        "0",
        "7",
        "42",
        "12345",
        "1234567890",
        "00000",
        "3.14159",
        "-273.15",
        "1,234,567",
        "₩1,234,567,890",
        "$19.99",
        "12.5%",
        "1e-6",
        "0x1F",
        "2024-03-15",
        "2024년 3월 15일",
        "2024.03.15 14:30:00",
        "03/15/2024",
        "010-1234-5678",
        "+82-10-1234-5678",
        "(02) 123-4567",
        "1989년 2월 15일",
        "제3조 제1항 제2호",
        "총 3,500만 원을 12개월 동안 분할 상환",
        "1st 2nd 3rd 4th",
        "v1.2.3-beta.4",
        "10^9 + 7 = 1000000007",
        "①②③④⑤",
        "½ ¾ ⅓",
        "١٢٣ ४५६",
    ]
    # whitespace runs
    c += [
        " ",
        "  ",
        "   ",
        "        ",
        "\t",
        "\t\t",
        "\n",
        "\n\n",
        "\n\n\n\n",
        "\r\n",
        "\r\n\r\n",
        "\r",
        " \t \n ",
        " leading space",
        "   leading spaces",
        "trailing space ",
        "trailing spaces   ",
        "  both sides  ",
        "multiple   spaces   between   words",
        "tab\tseparated\tvalues",
        "line one\nline two\nline three",
        "windows\r\nline\r\nendings",
        "한국어  두 칸   세 칸",
        " 안녕하세요",
        "안녕하세요 ",
        "\n안녕\n",
        "a\u00a0b",  # no-break space
        "a\u3000b",  # ideographic space
    ]
    # emoji
    c += [
        "😀",
        "👍",
        "안녕하세요 😊",
        "I ❤️ Seoul",
        "👨‍👩‍👧‍👦",
        "👩🏽‍💻",
        "🏳️‍🌈",
        "🇰🇷",
        "🇰🇷🇺🇸🇯🇵",
        "🔥🔥🔥",
        "✅ 완료 ❌ 실패",
        "👋🏻👋🏼👋🏽👋🏾👋🏿",
    ]
    # control / special token text
    c += [
        "<start_of_turn>user\n안녕하세요<end_of_turn>\n<start_of_turn>model\n",
        "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n",
        "<start_of_turn>user\n한국의 전통 음식 세 가지를 알려주세요.<end_of_turn>\n<start_of_turn>model\n",
        "<bos>",
        "<eos>",
        "<pad>",
        "<unk>",
        "<unused5>",
        "<unused0><unused1>",
        "<bos>Hello<eos>",
        "text<pad>more text",
        "<start_of_turn>",
        "<end_of_turn>",
        "<start_of_turn",
        "start_of_turn>",
        "<start_of_turn user",
        "<end_of_turn\n",
        "< start_of_turn >",
        "<START_OF_TURN>",
        "<<start_of_turn>>",
        "<start_of_image>",
        "<mask>",
        "<b>bold</b> <i>italic</i>",
        "<div class=\"x\">내용</div>",
    ]
    # Hanja / Japanese / Chinese
    c += [
        "大韓民國",
        "學而時習之 不亦說乎",
        "漢字와 한글을 섞어 쓴 文章",
        "こんにちは、世界！",
        "東京タワーに行きました。",
        "カタカナとひらがな",
        "你好，世界。",
        "我爱北京天安门。",
        "中华人民共和国",
    ]
    # Hangul compatibility jamo / NFD Hangul / halfwidth
    c += [
        "ㄱㄴㄷㄹㅁㅂㅅㅇㅈㅊㅋㅌㅍㅎ",
        "ㅏㅑㅓㅕㅗㅛㅜㅠㅡㅣ",
        "ㅎㅇ ㄱㅅ ㅠㅠ",
        "\u1100\u1161\u11a8",  # NFD 각
        "\u1112\u1161\u11ab\u1100\u1173\u11af",  # NFD 한글
        "\u1109\u1165\u110b\u116e\u11af",  # NFD 서울
        "한글 \u1112\u1161\u11ab\u1100\u1173\u11af 한글",  # NFC and NFD side by side
        "\uffa1\uffc2",  # halfwidth jamo
        "\u3164",  # Hangul filler
    ]
    # punctuation only
    c += [
        ".",
        "...",
        "!?",
        "?!?!",
        "!!!!!!!!",
        "---",
        "=====",
        "()[]{}<>",
        "\"'`",
        "@#$%^&*",
        "~!@#$%^&*()_+-=",
        "…",
        "「」『』【】《》",
        "·ㆍ•",
        "、。，！？",
        "/\\|",
    ]
    # URLs / emails / code
    c += [
        "https://www.example.com/path?query=1&lang=ko#section",
        "http://localhost:8080/v1/chat/completions",
        "https://ko.wikipedia.org/wiki/%EB%8C%80%ED%95%9C%EB%AF%BC%EA%B5%AD",
        "user.name+tag@example.co.kr",
        "문의: support@damda.ai 또는 02-123-4567",
        "def f(x):\n    return x * 2\n",
        "for (int i = 0; i < n; ++i) { sum += a[i]; }",
        "let x: [Int] = [1, 2, 3].map { $0 * 2 }",
        "SELECT * FROM users WHERE id = 42;",
        "{\"key\": \"값\", \"n\": [1, 2.5, null, true]}",
        "#include <stdio.h>\nint main(void) { return 0; }",
        "$ swift build -c release 2>&1 | tee build.log",
        "    indented code line",
        "```python\nprint('안녕')\n```",
        "C:\\Users\\damda\\Documents\\file.txt",
        "x_1 += y**2 // 3 % 4",
    ]
    # empty, very long words, repetition
    c += [
        "",
        "a",
        "가",
        "Pneumonoultramicroscopicsilicovolcanoconiosis",
        "a" * 200,
        "가" * 150,
        "ab" * 100,
        "안녕" * 60,
        "0123456789" * 20,
        "-" * 120,
        "=" * 64,
        " " * 50,
        "\n" * 30,
        "x" * 1 + " y" * 80,
        "antidisestablishmentarianism" * 5,
        "국민건강보험법시행령일부개정령안입법예고",
        "😀" * 30,
    ]
    # rare unicode
    c += [
        "\ufffd",
        "a\ufffdb",
        "zero\u200bwidth\u200bspace",
        "\u200b",
        "\u200d",
        "\ufeffBOM at start",
        "e\u0301",  # e + combining acute
        "a\u0308o\u0308u\u0308",
        "Z\u0351\u0352\u0353a\u0354l\u0355g\u0356o",  # combining marks pile-up
        "\u202eRTL override",
        "مرحبا بالعالم",
        "שלום עולם",
        "Привет, мир!",
        "Γειά σου Κόσμε",
        "नमस्ते दुनिया",
        "สวัสดีชาวโลก",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙",
        "𠀀𠀁𪚥",  # CJK extension B
        "\U0010fffd",  # private use plane 16
        "\ue000",  # private use area
        "™ © ® ℃ № ℓ",
        "∑∫∂√∞≠≤≥",
        "\u00ad",  # soft hyphen
        "\x00",
        "\x01\x02\x03",
        "\x7f",
        "\x1b[31mred\x1b[0m",
    ]
    return c


def data_cases():
    rs = np.random.RandomState(20240315)
    qa = read_jsonl(KORQUAD_QA)
    q_idx = sorted(rs.choice(len(qa), size=80, replace=False).tolist())
    questions = [qa[i]["question"] for i in q_idx]
    law = read_jsonl(EASYLAW_DOCS)
    l_idx = sorted(rs.choice(len(law), size=40, replace=False).tolist())
    law_snips = [law[i]["text"][:200] for i in l_idx]
    docs = read_jsonl(KORQUAD_DOCS)
    d_idx = sorted(rs.choice(len(docs), size=20, replace=False).tolist())
    doc_snips = [docs[i]["text"][:300] for i in d_idx]
    return questions + law_snips + doc_snips


def make_tokenizer_fixture(tok, model_sha, out_dir):
    texts, seen = [], set()
    for t in handwritten_cases() + data_cases():
        if t not in seen:
            seen.add(t)
            texts.append(t)
    assert len(texts) >= 240, len(texts)
    cases = [{"text": t, "ids": [int(i) for i in tok.encode(t, add_special=True, parse_special=True)]}
             for t in texts]
    doc = {"model_sha256": model_sha, "generator": GENERATOR, "cases": cases}
    path = os.path.join(out_dir, TOKENIZER_OUT)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\"model_sha256\": %s, \"generator\": %s, \"cases\": [\n" % (
            json.dumps(model_sha), json.dumps(GENERATOR)))
        f.write(",\n".join(json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in cases))
        f.write("\n]}\n")
    json.loads(open(path, encoding="utf-8").read())  # sanity: valid JSON, same content
    assert json.load(open(path, encoding="utf-8")) == doc
    log(f"wrote {path}: {len(cases)} cases, {os.path.getsize(path)} bytes")
    return path, len(cases)


# --------------------------------------------------------------------------------------
# Logits
# --------------------------------------------------------------------------------------

def rag_prompt(tok):
    """First KorQuAD dev question with its gold paragraph, trimmed by characters to 450..500 tokens.

    If the gold paragraph alone is too short, the following paragraphs of the same article
    (next doc ids, same article prefix) are appended, one per line, before trimming.
    """
    with open(KORQUAD_QA, encoding="utf-8") as f:
        q = json.loads(f.readline())
    docs = read_jsonl(KORQUAD_DOCS)
    gi = next(i for i, d in enumerate(docs) if d["id"] == q["doc_id"])
    article = q["doc_id"].rsplit("-", 1)[0]
    para = docs[gi]["text"]
    j = gi + 1
    n = lambda p: len(tok.encode(RAG_TEMPLATE.format(question=q["question"], paragraph=p)))  # noqa: E731
    while n(para) < RAG_MAX_TOKENS and j < len(docs) and docs[j]["id"].rsplit("-", 1)[0] == article:
        para = para + "\n" + docs[j]["text"]
        j += 1
    if n(para) > RAG_MAX_TOKENS:
        lo, hi = 0, len(para)  # largest prefix length with <= max tokens
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if n(para[:mid]) <= RAG_MAX_TOKENS:
                lo = mid
            else:
                hi = mid - 1
        cut = para[:lo]
        # prefer ending at a sentence boundary when that still leaves enough tokens
        k = cut.rfind(". ")
        if k > 0 and n(cut[:k + 1]) >= RAG_MIN_TOKENS:
            cut = cut[:k + 1]
        para = cut.rstrip()
    text = RAG_TEMPLATE.format(question=q["question"], paragraph=para)
    nt = n(para)
    assert RAG_MIN_TOKENS <= nt <= RAG_MAX_TOKENS, nt
    return text


def run_prompt(ref, name, text, probe_ids):
    ids = [int(i) for i in ref.tokenizer.encode(text, add_special=True, parse_special=True)]
    t0 = time.time()
    cache = ref.new_cache()
    logits = ref.forward(ids, cache)
    log(f"{name}: {len(ids)} tokens, prompt forward {time.time() - t0:.1f}s")
    order = np.argsort(-logits, kind="stable")[:N_TOP]
    top = [[int(i), round(float(logits[i]), 6)] for i in order]
    probe = [[int(i), round(float(logits[i]), 6)] for i in probe_ids]
    greedy = []
    cur = logits
    for step in range(N_GREEDY):
        nt = int(np.argmax(cur))
        greedy.append(nt)
        if step + 1 < N_GREEDY:
            cur = ref.forward([nt], cache)
    log(f"{name}: top1 {top[0]}, greedy {greedy!r} ({time.time() - t0:.1f}s), "
        f"text {ref.tokenizer.decode(greedy)!r}")
    return {"name": name, "text": text, "ids": ids, "top": top, "probe": probe, "greedy": greedy}


def make_logits_fixture(ref, model_sha, out_dir):
    probe_ids = np.random.RandomState(PROBE_SEED).randint(0, ref.n_vocab, size=N_PROBE).tolist()
    prompts = [
        ("en_short", "The capital of France is"),
        ("ko_short", "대한민국의 수도는"),
        ("chat", "<start_of_turn>user\n한국의 전통 음식 세 가지를 알려주세요.<end_of_turn>\n"
                 "<start_of_turn>model\n"),
        ("ko_rag_long", rag_prompt(ref.tokenizer)),
        ("mixed_code", MIXED_CODE_TEXT),
    ]
    n_mixed = len(ref.tokenizer.encode(MIXED_CODE_TEXT))
    assert 150 <= n_mixed <= 250, n_mixed
    results = [run_prompt(ref, name, text, probe_ids) for name, text in prompts]
    head = {"model_sha256": model_sha, "generator": GENERATOR, "dtype": "float64"}
    path = os.path.join(out_dir, LOGITS_OUT)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(head, ensure_ascii=False)[:-1] + ", \"prompts\": [\n")
        f.write(",\n".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in results))
        f.write("\n]}\n")
    doc = json.load(open(path, encoding="utf-8"))
    assert doc["prompts"] == results and doc["model_sha256"] == model_sha
    log(f"wrote {path}: {len(results)} prompts, {os.path.getsize(path)} bytes")
    return path, results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL, help="GGUF path (default: $DAMDA_MODEL or the cache)")
    ap.add_argument("--out-dir", default=REPO, help="root to write Tests/... under (default: repo root)")
    ap.add_argument("--only", choices=["all", "tokenizer", "logits"], default="all")
    args = ap.parse_args(argv)
    model = os.path.expanduser(args.model)
    model_sha = sha256_file(model)
    log(f"model {model} sha256 {model_sha}")
    if args.only == "tokenizer":
        tok = gemma3_ref.SPMTokenizer(gemma3_ref.GGUFFile(model))
        make_tokenizer_fixture(tok, model_sha, args.out_dir)
        return
    t0 = time.time()
    ref = gemma3_ref.Gemma3Ref(model, dtype=np.float64, verbose=False)
    log(f"reference loaded in {time.time() - t0:.1f}s")
    if args.only == "all":
        make_tokenizer_fixture(ref.tokenizer, model_sha, args.out_dir)
    make_logits_fixture(ref, model_sha, args.out_dir)


if __name__ == "__main__":
    main()
