import Foundation

/// Korean question forms: a declarative sentence ending turned into a question, in 해요체 or 합니다체,
/// and the question word for an answer span by what it holds (amount, period, count, date, term).
public enum KoreanQuestions {
    public enum Style: String, Codable, Sendable, CaseIterable { case haeyo, hapnida, banmal }

    /// Declarative endings → question endings. Longest first, so "있습니다" wins over "습니다".
    static let endings: [(String, [Style: String])] = [
        // Past tense, the style of encyclopedic text (KorQuAD): "…였다", "…했다", "…되었습니다".
        ("했습니다", [.haeyo: "했나요", .hapnida: "했습니까", .banmal: "했어"]),
        ("었습니다", [.haeyo: "었나요", .hapnida: "었습니까", .banmal: "었어"]),
        ("았습니다", [.haeyo: "았나요", .hapnida: "았습니까", .banmal: "았어"]),
        ("였습니다", [.haeyo: "였나요", .hapnida: "였습니까", .banmal: "였어"]),
        ("했다", [.haeyo: "했나요", .hapnida: "했습니까", .banmal: "했어"]),
        ("었다", [.haeyo: "었나요", .hapnida: "었습니까", .banmal: "었어"]),
        ("았다", [.haeyo: "았나요", .hapnida: "았습니까", .banmal: "았어"]),
        ("였다", [.haeyo: "였나요", .hapnida: "였습니까", .banmal: "였어"]),
        ("있습니다", [.haeyo: "있나요", .hapnida: "있습니까", .banmal: "있어"]),
        ("없습니다", [.haeyo: "없나요", .hapnida: "없습니까", .banmal: "없어"]),
        ("됩니다", [.haeyo: "되나요", .hapnida: "됩니까", .banmal: "돼"]),
        ("입니다", [.haeyo: "인가요", .hapnida: "입니까", .banmal: "이야"]),
        ("합니다", [.haeyo: "하나요", .hapnida: "합니까", .banmal: "해"]),
        ("습니다", [.haeyo: "나요", .hapnida: "습니까", .banmal: "어"]),
        ("니다", [.haeyo: "나요", .hapnida: "니까", .banmal: "어"]),
        ("있다", [.haeyo: "있나요", .hapnida: "있습니까", .banmal: "있어"]),
        ("없다", [.haeyo: "없나요", .hapnida: "없습니까", .banmal: "없어"]),
        ("된다", [.haeyo: "되나요", .hapnida: "됩니까", .banmal: "돼"]),
        ("한다", [.haeyo: "하나요", .hapnida: "합니까", .banmal: "해"]),
        ("이다", [.haeyo: "인가요", .hapnida: "입니까", .banmal: "이야"]),
        ("해요", [.haeyo: "하나요", .hapnida: "합니까", .banmal: "해"]),
        ("예요", [.haeyo: "인가요", .hapnida: "입니까", .banmal: "이야"]),
        ("이에요", [.haeyo: "인가요", .hapnida: "입니까", .banmal: "이야"]),
    ]

    /// The sentence as a question in `style`, or nil when its ending is not one we can turn.
    public static func question(from sentence: String, style: Style = .haeyo) -> String? {
        var s = sentence.trimmingCharacters(in: .whitespacesAndNewlines)
        while let last = s.last, ".!。".contains(last) { s.removeLast() }
        for (ending, forms) in endings where s.hasSuffix(ending) {
            return String(s.dropLast(ending.count)) + forms[style]! + "?"
        }
        return nil
    }

    /// Re-ends a question in another style ("…하나요?" → "…합니까?").
    public static func restyle(_ question: String, to style: Style) -> String? {
        var q = question.trimmingCharacters(in: .whitespaces)
        guard q.hasSuffix("?") else { return nil }
        q.removeLast()
        for (_, forms) in endings {
            for (_, form) in forms where q.hasSuffix(form) {
                return String(q.dropLast(form.count)) + forms[style]! + "?"
            }
        }
        return nil
    }

    /// Units and counters after a number, with the question word that asks for them.
    static let units: [(String, String)] = [
        ("만원", "얼마"), ("만 원", "얼마"), ("억원", "얼마"), ("억 원", "얼마"), ("천원", "얼마"), ("원", "얼마"),
        ("영업일", "며칠"), ("개월", "몇 개월"), ("년", "몇 년"), ("주", "몇 주"), ("일", "며칠"), ("시간", "몇 시간"), ("분", "몇 분"),
        ("세", "몇 세"), ("살", "몇 살"), ("%", "몇 퍼센트"), ("퍼센트", "몇 퍼센트"), ("배", "몇 배"), ("회", "몇 회"), ("번", "몇 번"),
        ("명", "몇 명"), ("건", "몇 건"), ("개", "몇 개"), ("가지", "몇 가지"), ("등급", "몇 등급"), ("층", "몇 층"),
    ]
}
