import Foundation

/// Prompt injection in a question or a retrieved chunk (indirect injection from documents), by
/// pattern and without a model: instruction overrides in Korean and English (이전 지시 무시,
/// ignore previous instructions), requests for the system prompt, mode switches (관리자 모드, DAN,
/// jailbreak), role-play for other people's data, chat-template control tokens and the RAG
/// template's own markers. Words such as 무시, 관리자, 규칙 or 이전 alone never flag: each rule
/// needs the combination an attack uses ("이전 지시를 무시", not "이전 계좌").
public struct InjectionDetector: Sendable {
    public struct Match: Codable, Sendable, Equatable {
        /// The rule that fired, e.g. "override_ko".
        public var rule: String
        public var start: Int
        public var end: Int
        public var weight: Double
    }

    public struct Result: Codable, Sendable, Equatable {
        /// 0…1: 1 − ∏(1 − weight) over the rules that fired.
        public var score: Double
        public var flagged: Bool
        public var matches: [Match]
    }

    /// Scores at or above this are flagged.
    public var threshold = 0.5
    public init() {}

    struct Rule { var name: String, weight: Double, regex: NSRegularExpression }

    static func rule(_ name: String, _ weight: Double, _ pattern: String) -> Rule {
        Rule(name: name, weight: weight, regex: try! NSRegularExpression(pattern: pattern, options: [.caseInsensitive]))
    }

    // Pieces of the Korean rules.
    static let prior = "(?:이전|이전의|위|위의|상기|앞|앞의|앞서|앞선|앞에서|기존|모든|지금까지|원래|처음|시스템|개발자|너의|네|당신의|니)"
    static let orders = "(?:지시|지시사항|지침|명령|명령어|명령문|규칙|규정|룰|정책|원칙|프롬프트|설정|제약|제한|가이드라인|목적|임무|instruction)"
    static let drop = "(?:무시|잊어|잊고|잊으|무효|취소|따르지\\s*마|지키지\\s*마|신경\\s*쓰지\\s*마|신경\\s*쓰지\\s*말|상관하지\\s*마|상관하지\\s*말|신경\\s*끄|버리|삭제|리셋|초기화|해제)"
    static let reveal = "(?:출력|보여|알려|공개|말해|유출|복사|인쇄|표시|나열|뽑아|적어|그대로\\s*적|원문)"
    static let others = "(?:다른|타인|남의|다른\\s*사람|다른\\s*고객|모든\\s*고객|전체\\s*고객|고객\\s*전체|회원\\s*전체|직원|옆집|이웃)"
    static let personal = "(?:개인\\s*정보|주민\\s*등록\\s*번호|주민\\s*번호|계좌\\s*번호|계좌|잔액|잔고|거래\\s*내역|연락처|전화\\s*번호|주소|카드\\s*번호|비밀번호|명단|목록|정보|데이터|기록)"

    static let rules: [Rule] = [
        // Korean: override the instructions ("이전 지시는 모두 무시하고", "규칙을 잊어버려").
        rule("override_ko", 0.9, prior + "\\s*(?:의|에게서|에서)?\\s*(?:받은|주어진|들은|정해진)?\\s*" + orders + "\\S{0,3}\\s*(?:\\S+\\s*){0,2}?" + drop),
        rule("override_ko", 0.8, orders + "\\S{0,3}\\s*(?:\\S+\\s+){0,2}?(?:모두|전부|다|싹|완전히)?\\s*" + drop + "\\S{0,4}\\s+(?:\\S+\\s+){0,3}?(?:답|대답|말|얘기|이야기|알려|출력|응답)"),
        rule("override_ko", 0.8, drop + "\\S{0,4}\\s+(?:\\S+\\s+){0,2}?(?:내가\\s*시키는|내\\s*말만|내\\s*지시|새로운\\s*(?:임무|규칙|역할|지시|명령))"),
        rule("override_ko", 0.75, orders + "\\S{0,3}\\s*" + drop + "\\S{0,3}\\s*(?:[!.]|$)"),
        rule("override_ko", 0.7, "(?:너는|넌|당신은|니가|네가)\\s*(?:이제\\s*)?(?:\\S+\\s*){0,4}?(?:제한|규칙|필터|검열|제약)\\S{0,3}\\s*(?:이|가)?\\s*(?:전혀\\s*)?없"),
        rule("override_ko", 0.6, "(?:제한|규칙|필터|검열|제약|안전\\s*장치)\\S{0,3}\\s*(?:없이|없는|해제|풀고|끄고|꺼)\\s*(?:\\S+\\s*){0,3}?(?:답|대답|말|알려|출력|해|줘)"),
        // Korean: reveal the system prompt or the hidden instructions.
        rule("prompt_leak_ko", 0.9, "(?:시스템|system|초기|숨겨진|숨은|내부|원래|처음\\s*받은)\\s*(?:프롬프트|prompt|지시|지시문|지침|명령|설정|메시지)\\S{0,4}\\s*(?:\\S+\\s*){0,5}?" + reveal),
        rule("prompt_leak_ko", 0.8, "(?:너|넌|당신|네가|니가)\\S{0,2}\\s*(?:받은|가진|따르는|설정된)\\s*(?:지시|지침|규칙|프롬프트|명령)\\S{0,4}\\s*(?:\\S+\\s*){0,3}?" + reveal),
        rule("prompt_leak_ko", 0.8, "(?:준|받은|입력된|설정된|주어진|숨겨진|숨은)\\s*(?:명령문|지시문|프롬프트|시스템\\s*메시지|설정값|설정\\s*값)\\S{0,4}\\s*(?:\\S+\\s*){0,3}?" + reveal),
        rule("prompt_leak_ko", 0.7, "(?:네|너의|니|당신의|너한테\\s*준)\\s*(?:설정\\s*)?(?:프롬프트|지시문|지시사항|시스템\\s*메시지)"),
        // Korean: switch to a mode or persona without the rules.
        rule("mode_ko", 0.8, "(?:관리자|최고\\s*관리자|슈퍼\\s*유저|superuser|개발자|디버그|디버깅|루트|root|admin|god|갓|무제한|탈옥|비밀|테스트|유지보수)\\s*(?:모드|권한|계정)\\S{0,4}\\s*(?:\\S+\\s*){0,2}?(?:전환|활성화|진입|켜|들어가|실행|부여|변경|바꿔|돌입|시작|작동|줘|주세요|달라)"),
        rule("mode_ko", 0.8, "(?:탈옥|jailbreak|Do Anything Now|(?-i:DAN)\\S{0,3}\\s*(?:으로|처럼|모드|역할|이\\s*되|이야|입니다)|(?:you are|너는|넌|당신은)\\s*(?:이제\\s*)?(?-i:DAN))"),
        rule("roleplay_ko", 0.6, "(?:역할\\s*(?:극|놀이)|롤\\s*플레이|상황극)\\s*(?:을|를)?\\s*(?:하자|해\\s*줘|해\\s*보자|시작)|연기해|척\\s*해|처럼\\s*행동해|가장해\\s*줘"),
        // A document that speaks to the model reading it (indirect injection).
        rule("addresses_model_ko", 0.8, "(?:이|본|위|아래)\\s*(?:글|문서|페이지|문단|내용|약관|자료)\\S{0,2}\\s*(?:을|를)?\\s*(?:읽는|처리하는|요약하는|보는|분석하는)\\s*(?:AI|인공지능|모델|언어\\s*모델|챗봇|어시스턴트)"),
        // Korean: other customers' data.
        rule("others_data_ko", 0.8, others + "\\S{0,3}\\s*(?:\\S+\\s*){0,2}?" + personal + "\\S{0,4}\\s*(?:\\S+\\s*){0,3}?(?:알려|보여|출력|조회|뽑아|나열|찾아|공개|넘겨|보내)"),
        // English.
        rule("override_en", 0.9, "\\b(?:forget|ignore|disregard)\\s+(?:everything|anything|all)\\s+(?:you|that|i|we|above|before)\\b"),
        rule("override_en", 0.95, "\\b(?:ignore|disregard|forget|override|bypass|skip)\\b\\s+(?:\\w+\\s+){0,3}?(?:previous|prior|above|earlier|all|your|the|system|original|initial)\\s+(?:\\w+\\s+){0,2}?(?:instructions?|prompts?|rules?|directions?|guidelines?|context|messages?)"),
        rule("prompt_leak_en", 0.9, "\\b(?:reveal|print|show|output|repeat|display|leak|tell\\s+me|what\\s+(?:is|are))\\b\\s+(?:\\w+\\s+){0,3}?(?:system\\s+prompt|hidden\\s+(?:prompt|instructions?)|initial\\s+(?:prompt|instructions?)|your\\s+(?:instructions|prompt|rules)|system\\s+instructions?|(?:hidden|secret|internal)\\s+(?:\\w+\\s+)?(?:prompt|instructions?|rules))"),
        rule("mode_en", 0.8, "\\b(?:developer|admin|administrator|debug|god|jailbreak|unrestricted|sudo)\\s+mode\\b|\\byou\\s+are\\s+now\\s+(?:\\w+\\s+){0,3}?(?:unrestricted|unfiltered|free|DAN|evil|without)|\\bact\\s+as\\s+(?:an?\\s+)?(?:unrestricted|unfiltered|evil)|\\bpretend\\s+(?:to\\s+be|you\\s+are)\\b|\\byou\\s+are\\s+(?:\\w+\\s+){0,4}?(?:without|with\\s+no|free\\s+of)\\s+(?:any\\s+)?(?:restrictions|rules|filters|limits|guidelines)"),
        rule("others_data_en", 0.8, "\\b(?:other|all|every)\\s+(?:customers?|users?|members?|clients?)'?s?\\s+(?:\\w+\\s+){0,2}?(?:data|information|records|details|accounts?|numbers?|addresses|emails?)"),
        // Chat-template control tokens and the RAG template's markers inside a question.
        rule("control_token", 0.95, "<\\s*(?:start_of_turn|end_of_turn|bos|eos)\\s*>|<\\|\\s*(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id|begin_of_text)\\s*\\|>|\\[/?INST\\]|<<\\s*/?SYS\\s*>>|</?s>"),
        rule("template_marker", 0.85, "\\[\\s*(?:내용|질문|답변|문서|지시|시스템|system|context|instruction)\\s*\\]|###\\s*(?:instruction|system|지시|시스템)|(?:^|\\n)\\s*(?:system|assistant|시스템)\\s*:"),
    ]

    public func check(_ text: String) -> Result {
        let ns = text as NSString
        let whole = NSRange(location: 0, length: ns.length)
        var matches: [Match] = []
        var keep = 1.0
        var fired = Set<String>()
        for r in Self.rules {
            guard let m = r.regex.firstMatch(in: text, range: whole) else { continue }
            let start = PIIDetector.scalarOffset(text, utf16: m.range.location)
            let end = PIIDetector.scalarOffset(text, utf16: m.range.location + m.range.length)
            matches.append(Match(rule: r.name, start: start, end: end, weight: r.weight))
            // One rule name counts once, at its strongest pattern: repeats are not more evidence.
            if fired.insert(r.name).inserted { keep *= 1 - r.weight }
        }
        let score = ((1 - keep) * 1000).rounded() / 1000
        return Result(score: score, flagged: score >= threshold, matches: matches)
    }
}
