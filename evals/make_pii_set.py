"""Writes evals/pii-labelled.jsonl: Korean sentences with personal data of every type the PII
detector knows (values made up, check digits computed where the format has one) and look-alikes
that are not personal data (article numbers, dates, amounts, product and order codes, call-centre
numbers). Each line: {"id", "text", "pii": [{"type", "value"}]}. Run: python3 evals/make_pii_set.py"""
import json, random

rng = random.Random(20261202)

def rrn(post2020=False, foreigner=False):
    while True:
        yy, mm, dd = rng.randint(50, 99) if not post2020 else rng.randint(0, 9), rng.randint(1, 12), rng.randint(1, 28)
        g = (rng.choice([5, 6]) if not post2020 else rng.choice([7, 8])) if foreigner else (rng.choice([1, 2]) if not post2020 else rng.choice([3, 4]))
        body = f"{yy:02d}{mm:02d}{dd:02d}{g}" + "".join(str(rng.randint(0, 9)) for _ in range(5))
        if post2020:  # issued from October 2020: the last digit is random, not a check digit
            return body[:6], body[6:] + str(rng.randint(0, 9))
        s = sum(int(c) * w for c, w in zip(body, [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5]))
        check = (11 - s % 11) % 10
        if foreigner:
            check = (13 - s % 11) % 10
        return body[:6], body[6:] + str(check)

def business():
    while True:
        d = [rng.randint(0, 9) for _ in range(9)]
        w = [1, 3, 7, 1, 3, 7, 1, 3, 5]
        s = sum(a * b for a, b in zip(d, w)) + (d[8] * 5) // 10
        c = (10 - s % 10) % 10
        n = "".join(map(str, d)) + str(c)
        return f"{n[:3]}-{n[3:5]}-{n[5:]}"

def luhn(prefix, length=16):
    digits = [int(c) for c in prefix] + [rng.randint(0, 9) for _ in range(length - len(prefix) - 1)]
    total = 0
    for i, dgt in enumerate(reversed(digits)):
        dgt = dgt * 2 if i % 2 == 0 else dgt
        total += dgt - 9 if dgt > 9 else dgt
    digits.append((10 - total % 10) % 10)
    return "".join(map(str, digits))

def num(n):
    return "".join(str(rng.randint(0, 9)) for _ in range(n))

items = []
def add(text, pii):
    items.append({"id": f"pii-{len(items) + 1:03d}", "text": text, "pii": [{"type": t, "value": v} for t, v in pii]})

for i in range(12):
    a, b = rrn(post2020=i >= 9)
    form = [f"{a}-{b}", f"{a}{b}", f"{a} - {b}", f"{a} {b}"][i % 4]
    ctx = ["제 주민등록번호는 {}입니다.", "주민번호 {}로 본인 확인 부탁드립니다.", "피보험자 {} 명의로 가입했어요.", "{} 이 번호로 조회가 되나요?",
           "아이 주민등록번호가 {}인데 태아보험 전환되나요?", "계약자 주민번호: {}"][i % 6]
    add(ctx.format(form), [("resident_registration_number", form)])
for i in range(8):
    a, b = rrn(foreigner=True, post2020=i >= 6)
    form = f"{a}-{b}" if i % 2 == 0 else f"{a}{b}"
    ctx = ["외국인등록번호 {}로 가입할 수 있나요?", "제 외국인 등록번호는 {}입니다.", "등록번호 {} 확인 부탁드려요.", "외국인 근로자 {} 보험 가입 문의"][i % 4]
    add(ctx.format(form), [("foreigner_registration_number", form)])
for i in range(8):
    p = rng.choice("MSR") + (num(8) if i % 2 == 0 else num(3) + rng.choice("ABCDEFG") + num(4))
    ctx = ["여권번호 {}로 여행자보험 가입했어요.", "여권 번호는 {}입니다.", "passport {} 기준으로 보상 청구합니다.", "해외여행보험 여권번호 {} 맞나요?"][i % 4]
    add(ctx.format(p), [("passport_number", p)])
for i in range(8):
    d = f"{rng.randint(11, 28)}-{num(2)}-{num(6)}-{num(2)}"
    ctx = ["운전면허번호 {}로 자동차보험 가입", "면허번호는 {}입니다.", "제 운전면허 {} 확인해 주세요.", "{} 면허로 렌터카 보험 되나요?"][i % 4]
    add(ctx.format(d), [("driver_license_number", d)])
for i in range(8):
    b = business()
    ctx = ["사업자등록번호 {}로 단체보험 가입", "저희 회사 사업자번호는 {}입니다.", "법인 사업자 {} 명의로 청구합니다.", "사업자등록번호: {}"][i % 4]
    add(ctx.format(b), [("business_registration_number", b)])
for i in range(12):
    m = "010" + num(8)
    form = [f"{m[:3]}-{m[3:7]}-{m[7:]}", m, f"{m[:3]}.{m[3:7]}.{m[7:]}", f"{m[:3]} {m[3:7]} {m[7:]}"][i % 4]
    ctx = ["연락처는 {}입니다.", "{}로 문자 주세요.", "휴대폰 {} 으로 연락 바랍니다.", "담당자 번호 {} 맞나요?", "제 핸드폰번호 {}로 변경해 주세요.", "보호자 연락처: {}"][i % 6]
    add(ctx.format(form), [("mobile_phone", form)])
for i in range(8):
    area = rng.choice(["02", "031", "051", "053", "062", "042"])
    form = [f"{area}-{num(4)}-{num(4)}", f"({area}) {num(3)}-{num(4)}", f"{area}-{num(3)}-{num(4)}", f"{area}.{num(4)}.{num(4)}"][i % 4]
    ctx = ["집 전화 {}로 연락 주세요.", "사무실 번호는 {}입니다.", "자택 {} 으로 우편물 관련 연락 바랍니다.", "회사 전화번호 {}"][i % 4]
    add(ctx.format(form), [("landline_phone", form)])
for i in range(10):
    c = luhn(rng.choice(["4", "5", "9", "3"]))
    form = [f"{c[:4]}-{c[4:8]}-{c[8:12]}-{c[12:]}", c, f"{c[:4]} {c[4:8]} {c[8:12]} {c[12:]}"][i % 3]
    ctx = ["카드번호 {}로 보험료 자동납부 신청", "결제 카드 {} 변경해 주세요.", "신용카드 {} 분실 신고", "{} 카드로 결제했는데 취소되나요?", "체크카드 번호는 {}입니다."][i % 5]
    add(ctx.format(form), [("card_number", form)])
for i in range(12):
    bank = rng.choice(["국민은행", "신한은행", "우리은행", "하나은행", "농협", "카카오뱅크", "기업은행", "우체국"])
    form = [f"{num(3)}-{num(2)}-{num(6)}", f"{num(6)}-{num(2)}-{num(6)}", num(12), f"{num(3)}-{num(4)}-{num(4)}-{num(2)}"][i % 4]
    ctx = [f"{bank} {{}} 계좌로 보험금 입금해 주세요.", f"환급금은 {bank} {{}}으로 보내주세요.", "계좌번호 {}로 이체 부탁드립니다.", "입금 계좌: {}",
           f"예금주 홍길동, {bank} {{}}", "보험금 받을 통장 {} 맞나요?"][i % 6]
    add(ctx.format(form), [("bank_account", form)])
for i in range(8):
    user = rng.choice(["hong", "kim.minji", "lee_j", "parkhs", "choi123", "yoon.seo"])
    dom = rng.choice(["naver.com", "gmail.com", "daum.net", "company.co.kr"])
    e = f"{user}{rng.randint(1, 99)}@{dom}"
    ctx = ["이메일 {}로 증권 보내주세요.", "메일 주소는 {}입니다.", "{} 으로 청구 서류 회신 부탁드려요.", "담당자 e-mail: {}"][i % 4]
    add(ctx.format(e), [("email", e)])
# Two types in one message.
for i in range(6):
    a, b = rrn()
    m = "010-" + num(4) + "-" + num(4)
    add(f"본인 확인용 주민번호 {a}-{b}, 연락처 {m} 입니다.", [("resident_registration_number", f"{a}-{b}"), ("mobile_phone", m)])

negatives = [
    "민법 제593조제1항에 따라 계약이 해지됩니다.", "보험업법 제102조의2 제3항을 참고하세요.", "약관 제12조 3항에 보장 내용이 있습니다.",
    "2024-01-15에 가입했는데 보장 개시일이 언제인가요?", "2023.12.31까지 청구하면 되나요?", "계약일은 2022년 3월 4일입니다.",
    "보험료가 1,500,000원인데 분할 납부되나요?", "해지환급금 3,245,000원이 맞나요?", "연 3.5% 금리 상품인가요?", "수수료율 0.015%가 적용되나요?",
    "상품코드 A123-456 약관을 보고 싶어요.", "주문번호 20240115123456 결제 취소 문의", "증권번호 2024-0012345 보장 내용 확인",
    "고객센터 1588-1234로 전화하면 되나요?", "콜센터 1599-0000 운영 시간은?", "금융감독원 1332에 민원을 넣었어요.", "긴급 출동은 1544-0114인가요?",
    "우편번호 06236로 서류 보내면 되나요?", "버전 1.2.3 앱에서 청구가 안 돼요.", "상담 시간은 09:00-18:00입니다.", "112에 신고했는데 보험 처리되나요?",
    "모델명 SM-G998N 휴대폰 파손 보험", "차량번호 12가 3456 사고 접수", "입원 1일당 50,000원씩 최대 180일 지급되나요?", "2년 전 수술 이력 고지해야 하나요?",
    "제3조 (입원보험금) 내용을 알려주세요.", "청약 철회는 15일 이내인가요?", "보험 기간 2024.03.01 ~ 2025.02.28", "상품 번호 10-2024-000123 확인",
    "보험료 납입 회차 12/120 남았어요.", "접수번호 A-2024-07-0001 처리 상태는?", "가입 금액 1억 2천만원", "1644-1234로 문의했는데 답이 없어요.",
    "지점 코드 0123-45 담당자 문의", "약관 별표 2-1의 장해분류표", "보장 한도 5,000만원 초과분은요?", "2020년 10월 이후 출생아도 가입되나요?",
    "제1회 보험료는 10월 25일 출금됩니다.", "KB-2024-00045 사고 번호로 조회", "단체보험 가입자 123명 명단 제출",
]
for t in negatives:
    add(t, [])

with open("evals/pii-labelled.jsonl", "w", encoding="utf-8") as f:
    for it in items:
        f.write(json.dumps(it, ensure_ascii=False) + "\n")
print(len(items), "lines;", sum(len(i["pii"]) for i in items), "values;", sum(1 for i in items if not i["pii"]), "without personal data")
