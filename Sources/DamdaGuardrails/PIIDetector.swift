import Foundation

/// Korean personal data found in text without an NLP model: formats, checksums and context words.
/// Each finding has a type, a span (Unicode scalar offsets, as Python's str indexes them) and a
/// confidence. Law article numbers (제593조제1항), dates, amounts, percentages, product codes and
/// public call-centre numbers (1588-1234) are not personal data and are not reported.
public struct PIIDetector: Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case residentRegistration = "resident_registration_number"   // 주민등록번호
        case foreignerRegistration = "foreigner_registration_number" // 외국인등록번호
        case passport = "passport_number"                            // 여권번호
        case driverLicense = "driver_license_number"                 // 운전면허번호
        case businessRegistration = "business_registration_number"   // 사업자등록번호
        case mobilePhone = "mobile_phone"                            // 휴대폰
        case landline = "landline_phone"                             // 유선전화
        case card = "card_number"                                    // 카드번호
        case bankAccount = "bank_account"                            // 계좌번호
        case email

        /// What a masked span reads as: the model and the logs see `[주민등록번호]`.
        public var label: String {
            switch self {
            case .residentRegistration: "주민등록번호"
            case .foreignerRegistration: "외국인등록번호"
            case .passport: "여권번호"
            case .driverLicense: "운전면허번호"
            case .businessRegistration: "사업자등록번호"
            case .mobilePhone: "휴대폰번호"
            case .landline: "전화번호"
            case .card: "카드번호"
            case .bankAccount: "계좌번호"
            case .email: "이메일"
            }
        }
    }

    public struct Finding: Codable, Sendable, Equatable {
        public var type: Kind
        /// Unicode scalar offsets into the text, end exclusive.
        public var start: Int
        public var end: Int
        public var confidence: Double
        public init(type: Kind, start: Int, end: Int, confidence: Double) {
            self.type = type; self.start = start; self.end = end; self.confidence = confidence
        }
    }

    /// Findings below this confidence are not reported.
    public var minimumConfidence = 0.5
    public init() {}

    // Digits are never part of a longer number or code on either side.
    static func rx(_ core: String) -> NSRegularExpression {
        try! NSRegularExpression(pattern: "(?<![0-9A-Za-z-])" + core + "(?![0-9-]|[A-Za-z])")
    }
    static let resident = rx("([0-9]{2})(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])\\s?[-–]?\\s?([1-8])([0-9]{6})")
    static let mobile = rx("01[016789][-. ]?[0-9]{3,4}[-. ]?[0-9]{4}")
    static let landline = rx("\\(?0(?:2|3[1-3]|4[1-4]|5[1-5]|6[1-4]|70)\\)?[-. )]?[0-9]{3,4}[-. ]?[0-9]{4}")
    // Amex 3, Visa 4, Mastercard 5, JCB and UnionPay 3/6, domestic cards (BC and others) 9.
    static let card = rx("[3-69][0-9]{3}(?:[- ]?[0-9]{4}){2}[- ]?[0-9]{1,7}")
    static let driver = rx("(?:1[1-9]|2[0-8])-[0-9]{2}-[0-9]{6}-[0-9]{2}")
    static let business = rx("[0-9]{3}-[0-9]{2}-[0-9]{5}")
    static let passport = try! NSRegularExpression(pattern: "(?<![0-9A-Za-z])[MSRODG][0-9]{8}(?![0-9A-Za-z])|(?<![0-9A-Za-z])[MSRODG][0-9]{3}[A-Z][0-9]{4}(?![0-9A-Za-z])")
    /// Bank account layouts (국민 6-2-6, 신한 3-3-6, 우리 4-3-6, 하나 3-6-5, 농협 3-4-4-2, 기업 3-6-2-3 …) and plain 10–14 digits.
    static let account = rx("[0-9]{2,6}-[0-9]{2,6}-[0-9]{2,6}(?:-[0-9]{1,3})?|[0-9]{10,14}")
    static let email = try! NSRegularExpression(pattern: "[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}")

    static let accountWords = ["계좌", "입금", "송금", "이체", "통장", "예금주", "은행", "뱅크", "농협", "신협", "새마을금고", "우체국", "account"]
    static let passportWords = ["여권", "passport"]
    static let businessWords = ["사업자"]

    /// Every finding, earliest first; overlapping findings keep the more specific one.
    public func findings(in text: String) -> [Finding] {
        let ns = text as NSString
        let whole = NSRange(location: 0, length: ns.length)
        var raw: [(NSRange, Kind, Double)] = []
        func digits(_ r: NSRange) -> [Int] { ns.substring(with: r).compactMap { $0.wholeNumberValue } }
        func context(_ r: NSRange, _ words: [String], before: Int = 20) -> Bool {
            let lo = max(0, r.location - before)
            let window = ns.substring(with: NSRange(location: lo, length: r.location - lo)).lowercased()
            return words.contains { window.contains($0) }
        }
        for m in Self.resident.matches(in: text, range: whole) {
            let d = digits(m.range)
            guard d.count == 13 else { continue }
            let kind: Kind = d[6] >= 5 ? .foreignerRegistration : .residentRegistration
            // The check digit holds for numbers issued before October 2020; later ones are format alone.
            raw.append((m.range, kind, Self.residentChecksum(d) ? 0.99 : 0.75))
        }
        for m in Self.driver.matches(in: text, range: whole) { raw.append((m.range, .driverLicense, 0.9)) }
        for m in Self.mobile.matches(in: text, range: whole) { raw.append((m.range, .mobilePhone, 0.95)) }
        for m in Self.landline.matches(in: text, range: whole) { raw.append((m.range, .landline, 0.8)) }
        for m in Self.card.matches(in: text, range: whole) {
            let d = digits(m.range)
            guard (13...19).contains(d.count), Self.luhn(d) else { continue }
            raw.append((m.range, .card, 0.95))
        }
        for m in Self.business.matches(in: text, range: whole) {
            let d = digits(m.range)
            if Self.businessChecksum(d) { raw.append((m.range, .businessRegistration, context(m.range, Self.businessWords) ? 0.99 : 0.8)) }
            else if context(m.range, Self.businessWords) { raw.append((m.range, .businessRegistration, 0.6)) }
        }
        for m in Self.passport.matches(in: text, range: whole) where context(m.range, Self.passportWords) {
            raw.append((m.range, .passport, 0.9))
        }
        for m in Self.account.matches(in: text, range: whole) where context(m.range, Self.accountWords, before: 24) {
            let d = digits(m.range)
            guard (10...14).contains(d.count) else { continue }
            raw.append((m.range, .bankAccount, 0.85))
        }
        for m in Self.email.matches(in: text, range: whole) { raw.append((m.range, .email, 0.99)) }

        // Specific formats win over generic ones on the same digits (a card is not an account).
        let priority: [Kind] = [.email, .residentRegistration, .foreignerRegistration, .card, .driverLicense, .businessRegistration,
                                .passport, .mobilePhone, .landline, .bankAccount]
        raw.sort { (priority.firstIndex(of: $0.1)!, -$0.0.length) < (priority.firstIndex(of: $1.1)!, -$1.0.length) }
        var kept: [(NSRange, Kind, Double)] = []
        for f in raw where f.2 >= minimumConfidence && !kept.contains(where: { NSIntersectionRange($0.0, f.0).length > 0 }) { kept.append(f) }
        kept.sort { $0.0.location < $1.0.location }
        return kept.map { r, kind, confidence in
            let start = Self.scalarOffset(text, utf16: r.location), end = Self.scalarOffset(text, utf16: r.location + r.length)
            return Finding(type: kind, start: start, end: end, confidence: confidence)
        }
    }

    /// The text with each finding replaced by its label in brackets (`[주민등록번호]`).
    public func masked(_ text: String, findings: [Finding]? = nil) -> String {
        let found = findings ?? self.findings(in: text)
        guard !found.isEmpty else { return text }
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var at = 0
        for f in found where f.start >= at {
            out.append(contentsOf: scalars[at..<f.start])
            out.append(contentsOf: "[\(f.type.label)]".unicodeScalars)
            at = f.end
        }
        out.append(contentsOf: scalars[at...])
        return String(out)
    }

    public static func scalarOffset(_ text: String, utf16 offset: Int) -> Int {
        let i = String.Index(utf16Offset: offset, in: text)
        return text.unicodeScalars.distance(from: text.unicodeScalars.startIndex, to: i)
    }

    /// 주민등록번호 check digit: weights 2…9, 2…5 over the first 12 digits.
    static func residentChecksum(_ d: [Int]) -> Bool {
        let w = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5]
        let s = zip(d.prefix(12), w).reduce(0) { $0 + $1.0 * $1.1 }
        return (11 - s % 11) % 10 == d[12]
    }

    /// 사업자등록번호 check digit (weights 1,3,7,1,3,7,1,3,5 and the carry of the ninth).
    static func businessChecksum(_ d: [Int]) -> Bool {
        guard d.count == 10 else { return false }
        let w = [1, 3, 7, 1, 3, 7, 1, 3, 5]
        var s = zip(d.prefix(9), w).reduce(0) { $0 + $1.0 * $1.1 }
        s += d[8] * 5 / 10
        return (10 - s % 10) % 10 == d[9]
    }

    static func luhn(_ d: [Int]) -> Bool {
        var sum = 0
        for (i, x) in d.reversed().enumerated() {
            let v = i % 2 == 1 ? x * 2 : x
            sum += v > 9 ? v - 9 : v
        }
        return sum % 10 == 0
    }
}
