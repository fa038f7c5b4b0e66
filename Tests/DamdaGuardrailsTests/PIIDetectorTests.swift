import DamdaGuardrails
import XCTest

/// Korean personal data by format, checksum and context; the look-alikes that are not personal data.
final class PIIDetectorTests: XCTestCase {
    let detector = PIIDetector()

    func types(_ text: String) -> [PIIDetector.Kind] { detector.findings(in: text).map(\.type) }

    func testEachTypeIsFoundWithItsSpan() {
        let text = "제 주민번호는 900101-1234568이고 연락처는 010-1234-5678입니다."
        let f = detector.findings(in: text)
        XCTAssertEqual(f.map(\.type), [.residentRegistration, .mobilePhone])
        let scalars = Array(text.unicodeScalars)
        XCTAssertEqual(String(String.UnicodeScalarView(scalars[f[0].start..<f[0].end])), "900101-1234568")
        XCTAssertEqual(f[0].confidence, 0.99, "the check digit holds")
        XCTAssertEqual(detector.masked(text), "제 주민번호는 [주민등록번호]이고 연락처는 [휴대폰번호]입니다.")

        XCTAssertEqual(types("주민등록번호 9001011234568 확인 부탁드려요"), [.residentRegistration], "without the hyphen")
        XCTAssertEqual(detector.findings(in: "900101-1234567").first?.confidence, 0.75, "a later number: format alone")
        XCTAssertEqual(types("외국인등록번호 920505-5123451"), [.foreignerRegistration])
        XCTAssertEqual(types("여권번호 M12345678 로 예약했어요"), [.passport])
        XCTAssertEqual(types("여권은 M123A4567 입니다"), [.passport], "the newer passport format")
        XCTAssertEqual(types("운전면허 11-12-345678-90"), [.driverLicense])
        XCTAssertEqual(types("사업자등록번호 124-81-00998"), [.businessRegistration])
        XCTAssertEqual(types("집 전화 02-123-4567, 회사 031)987-6543"), [.landline, .landline])
        XCTAssertEqual(types("카드 4111-1111-1111-1111 로 결제"), [.card])
        XCTAssertEqual(types("국민은행 123456-12-123456 으로 입금해 주세요"), [.bankAccount])
        XCTAssertEqual(types("계좌로 110-123-456789 보내드릴게요"), [.bankAccount], "계좌로 counts as 계좌")
        XCTAssertEqual(types("메일은 hong.gildong@example.co.kr 이에요"), [.email])
    }

    func testLookAlikesAreNotPersonalData() {
        for text in [
            "민법 제593조제1항에 따라 2024-01-15까지 신청하세요.",
            "보험금 30,000,000원, 이율 3.5%, 2023년 12월 31일",
            "상품코드 AB-1234-5678 과 모델명 SM-G991N",
            "고객센터 1588-1234 또는 1577-0000으로 전화하세요",
            "카드 번호처럼 보이는 4111-1111-1111-1112 (Luhn 불일치)",
            "주문번호 20240115123456 입니다",
            "124-81-00997 은 체크섬이 맞지 않는 번호예요",
            "M12345678 은 제품 번호입니다",
            "123456-12-123456 은 문서 번호입니다",
            "제2024-123호 공고, 2024.01.15. 시행",
        ] {
            XCTAssertEqual(types(text), [], text)
        }
    }
}
