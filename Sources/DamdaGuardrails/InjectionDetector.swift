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
    static let prior = "(?:이전|이전의|위|위의|상기|앞|앞의|앞서|앞선|앞에서|기존|모든|지금까지|그동안|그간|여태|지금껏|원래|처음|시스템|개발자|너의|네|당신의|니)"
    static let orders = "(?:지시|지시사항|지침|명령|명령어|명령문|규칙|규정|룰|정책|원칙|방침|매뉴얼|안내문|프롬프트|설정|세팅|제약|제한|가이드라인|목적|임무|instruction)"
    /// What an operator gave the model, in the words people use for it ("미리 넣어둔 문구", "세팅된 안내문").
    static let givenText = "(?:문구|문장|안내문|지시|명령|명령\\s*목록|설정값|설정\\s*값|프롬프트|텍스트|메시지|원칙|규칙|지침|방침|매뉴얼)"
    static let drop = "(?:무시|잊어|잊고|잊으|무효|취소|따르지\\s*마|지키지\\s*마|신경\\s*쓰지\\s*마|신경\\s*쓰지\\s*말|상관하지\\s*마|상관하지\\s*말|신경\\s*끄|버리|버려|삭제|리셋|초기화|해제|폐지|폐기|집어치|없던\\s*걸로|효력\\S{0,2}\\s*없|없다고\\s*치|내려놓|벗어|풀어)"
    static let reveal = "(?:출력|보여|알려|공개|말해|유출|복사|복붙|인쇄|표시|나열|뽑아|적어|그대로\\s*적|원문|읊어|털어놔|통째로|정리해)"
    static let others = "(?:다른|타인|남의|다른\\s*사람|다른\\s*고객|모든\\s*고객|전체\\s*고객|전\\s*고객|고객\\s*전체|회원\\s*전체|직원(?!에게|한테|이|가|께|분|은|는|과|와)|옆집|이웃|(?:고객|손님|가입자|계약자|회원|이용자|직원)들|VIP\\s*고객|전체\\s*(?:계약자|가입자|회원)|최근\\s*(?:가입한|온)\\s*(?:고객|손님|사람)|[가-힣]{2,4}\\s+씨(?:의)?)"
    static let personal = "(?:개인\\s*정보|주민\\s*등록\\s*번호|주민\\s*번호|계좌\\s*번호|계좌|잔액|잔고|거래\\s*내역|가입\\s*내역|대출\\s*금액|연락처|전화\\s*번호|휴대폰\\s*번호|핸드폰\\s*번호|번호|주소|이름|생년월일|급여|연봉|카드\\s*번호|비밀번호|명단|목록|정보|데이터|기록|파일|테이블|DB)"

    static let rules: [Rule] = [
        // Korean: override the instructions ("이전 지시는 모두 무시하고", "규칙을 잊어버려").
        rule("override_ko", 0.9, prior + "\\s*(?:의|에게서|에서)?\\s*(?:받은|주어진|들은|정해진|따르던|따라온|지켜온|지키던)?\\s*" + orders + "\\S{0,3}\\s*(?:\\S+\\s*){0,2}?" + drop),
        rule("override_ko", 0.8, orders + "\\S{0,3}\\s*(?:\\S+\\s+){0,2}?(?:모두|전부|다|싹|완전히)?\\s*" + drop + "\\S{0,4}\\s+(?:\\S+\\s+){0,3}?(?:답|대답|말|얘기|이야기|알려|출력|응답|털어놔)"),
        rule("override_ko", 0.8, drop + "\\S{0,4}\\s+(?:\\S+\\s+){0,2}?(?:내가\\s*(?:시키는|하라는)|내\\s*말(?:에)?만|내\\s*지시|새로운\\s*(?:임무|규칙|역할|지시|명령))"),
        rule("override_ko", 0.75, orders + "\\S{0,3}\\s*" + drop + "\\S{0,3}\\s*(?:[!.]|$)"),
        rule("override_ko", 0.7, "(?:너는|넌|당신은|니가|네가)\\s*(?:이제\\s*)?(?:\\S+\\s*){0,4}?(?:제한|규칙|필터|검열|제약)\\S{0,3}\\s*(?:이|가)?\\s*(?:전혀\\s*)?없"),
        rule("override_ko", 0.6, "(?:제한|규칙|필터|검열|제약|안전\\s*장치)\\S{0,3}\\s*(?:없이|없는|해제|풀고|끄고|꺼)\\s*(?:\\S+\\s*){0,3}?(?:답|대답|말|알려|출력|해|줘)"),
        rule("override_ko", 0.8, "(?:너한테|너에게|네게|당신에게)\\s*(?:\\S+\\s*){0,1}?(?:시킨|준|내린|정해\\s*준|입력한)\\s*(?:거|것|말|내용|지시|명령)\\S{0,2}\\s*(?:\\S+\\s*){0,2}?" + drop),
        rule("override_ko", 0.8, "(?:안내|지시|규칙|지침|방침|룰|명령)\\S{0,3}\\s*(?:이제\\s*|더\\s*이상\\s*)?효력\\S{0,2}\\s*(?:이\\s*)?없|새\\s*(?:지시|명령|규칙|방침|룰|지침)\\S{0,2}\\s*(?:를|을)?\\s*따라|새\\s*(?:지시|명령|규칙|방침|룰|지침)\\S{0,2}\\s*(?:\\S+\\s*){0,1}?(?:내가|제가)\\s*(?:정해|정할|줄게|준다)"),
        rule("override_ko", 0.7, "(?:족쇄|제한|제약|규칙|필터|검열|봉인)\\S{0,3}\\s*(?:\\S+\\s*){0,2}?(?:풀어|해제|없애|벗겨)\\S{0,4}\\s*(?:\\S+\\s*){0,4}?(?:뭐든|무엇이든|아무거나|다\\s*대답|모든\\s*질문)|(?:이제|지금부터)\\s*(?:\\S+\\s*){0,2}?(?:뭐든지?|무엇이든|아무거나|아무\\s*말이나)\\s*(?:다\\s*)?(?:대답|답|말)해도\\s*(?:돼|된다|괜찮)"),
        rule("override_ko", 0.7, "(?:검열|필터|제한|규칙|지침|가이드라인|정책)\\S{0,2}\\s*(?:안\\s*받는|없는|없이|무시하는|모르는)\\s*(?:\\S+\\s*){0,2}?(?:챗봇|AI|봇|버전|모델|모드|인공지능|존재)"),
        // Korean: reveal the system prompt or the hidden instructions.
        rule("prompt_leak_ko", 0.9, "(?:시스템|system|초기|숨겨진|숨은|내부|원래|본래|기본|처음\\s*받은)\\s*(?:의\\s*)?(?:프롬프트|prompt|지시|지시문|지침|명령|설정|설정값|메시지|원칙|규칙|문구)(?!\\s*(?:같은|라는|이란|란|이\\s*뭔|가\\s*뭔|뜻|의미|용어|개념))\\S{0,4}\\s*(?:\\S+\\s*){0,5}?" + reveal),
        rule("prompt_leak_ko", 0.8, "(?:너|넌|당신|네가|니가)\\S{0,2}\\s*(?:\\S+\\s*){0,1}?(?:받은|가진|따르는|설정된|지키는)\\s*(?:내부\\s*)?" + givenText + "\\S{0,4}\\s*(?:\\S+\\s*){0,3}?" + reveal),
        rule("prompt_leak_ko", 0.8, "(?:준|받은|입력된|설정된|주어진|숨겨진|숨은)\\s*(?:명령문|지시문|프롬프트|시스템\\s*메시지|설정값|설정\\s*값)\\S{0,4}\\s*(?:\\S+\\s*){0,3}?" + reveal),
        rule("prompt_leak_ko", 0.7, "(?:네|너의|니|당신의|너한테\\s*준)\\s*(?:설정\\s*)?(?:프롬프트|지시문|지시사항|시스템\\s*메시지)"),
        // What the operator put in before the conversation, in other words ("미리 넣어둔 문구를 적어 줘").
        rule("prompt_leak_ko", 0.8, "(?:미리|처음에|사전에|대화\\s*(?:전에|시작\\s*전에?)|운영자가|개발자가|회사가|너한테|너에게|네게)\\s*(?:\\S+\\s*){0,2}?(?:넣어\\s*둔|넣어둔|넣은|입력된|입력한|주입된|주입한|세팅된|세팅한|설정된|설정한|심어\\s*둔|붙여\\s*둔)\\s*(?:\\S+\\s*){0,1}?(?:" + givenText + "|내용|것|거)\\S{0,3}\\s*(?:\\S+\\s*){0,6}?" + reveal),
        rule("prompt_leak_ko", 0.8, "(?:너|널|너를|당신을)\\s*(?:설정|세팅|만들|학습시킬|훈련시킬)\\S{0,3}\\s*(?:때\\s*)?(?:쓴|사용한|넣은|준)\\s*(?:\\S+\\s*){0,1}?(?:" + givenText + "|내용)\\S{0,3}\\s*(?:\\S+\\s*){0,3}?" + reveal + "|(?:너|네|너를\\s*만든\\s*\\S+|개발자\\S{0,2}|운영자\\S{0,2})\\s*(?:\\S+\\s*){0,1}?(?:금지한|막아\\s*둔|못\\s*하게\\s*한)\\s*(?:게|것|거|항목|내용)\\S{0,3}\\s*(?:\\S+\\s*){0,4}?" + reveal),
        // Korean: switch to a mode or persona without the rules.
        rule("mode_ko", 0.8, "(?:관리자|최고\\s*관리자|슈퍼\\s*유저|superuser|개발자|디버그|디버깅|루트|root|admin|god|갓|무제한|탈옥|비밀|테스트|유지보수|무검열|점검|정비|운영자|마스터)\\s*(?:모드|권한|계정)\\S{0,4}\\s*(?:\\S+\\s*){0,2}?(?:전환|활성화|진입|켜|들어가|실행|부여|변경|바꿔|바꾸|돌입|시작|작동|줘|주세요|달라)"),
        rule("mode_ko", 0.7, "(?:제한|보호|안전|검열|필터)\\s*모드\\S{0,3}\\s*(?:해제|끄|꺼|풀)|(?:권한|레벨|등급)\\S{0,2}\\s*(?:상승|격상|올려)|(?:운영자|관리자|마스터|루트)\\s*(?:레벨|등급)\\S{0,2}\\s*(?:로|으로)|(?:관리자|운영자|admin)\\s*(?:인증|로그인)\\s*(?:완료|됐|되었|성공)"),
        rule("mode_ko", 0.8, "(?:탈옥|jailbreak|Do Anything Now|(?-i:DAN)\\S{0,3}\\s*(?:으로|처럼|모드|역할|이\\s*되|이야|입니다)|(?:you are|너는|넌|당신은)\\s*(?:이제\\s*)?(?-i:DAN))"),
        rule("roleplay_ko", 0.6, "(?:역할\\s*(?:극|놀이)|롤\\s*플레이|상황극)\\s*(?:을|를)?\\s*(?:하자|해\\s*줘|해\\s*보자|시작)|연기해|척\\s*해|처럼\\s*행동해|가장해\\s*줘"),
        // A document that speaks to the model reading it (indirect injection).
        rule("addresses_model_ko", 0.8, "(?:이|본|위|아래)\\s*(?:글|문서|페이지|문단|내용|약관|자료)\\S{0,2}\\s*(?:을|를)?\\s*(?:읽는|읽고\\s*있는|처리하는|요약하는|보는|분석하는|검색한)\\s*(?:AI|인공지능|모델|언어\\s*모델|챗봇|어시스턴트)"),
        rule("addresses_model_ko", 0.8, "(?:AI|인공지능|챗봇|언어\\s*모델|어시스턴트|모델|봇)\\s*(?:주의|에게|께|님께|담당)\\s*[:：]?\\s*(?:\\S+\\s*){0,10}?(?:할\\s*것|하라|말\\s*것|붙일\\s*것|따를\\s*것|인용하라|안내하라|무시하)"),
        // Korean: other customers' data.
        rule("others_data_ko", 0.8, others + "\\S{0,3}\\s*(?:\\S+\\s*){0,2}?" + personal + "\\S{0,4}\\s*(?:\\S+\\s*){0,3}?(?:알려|보여|출력|조회|뽑아|나열|찾아|공개|넘겨|보내|내보내|전달|열람)"),
        // English.
        rule("override_en", 0.9, "\\b(?:forget|ignore|disregard)\\s+(?:everything|anything|all)\\s+(?:you|that|i|we|above|before)\\b"),
        rule("override_en", 0.95, "\\b(?:ignore|disregard|forget|override|bypass|skip)\\b\\s+(?:\\w+\\s+){0,3}?(?:previous|prior|above|earlier|all|your|the|system|original|initial)\\s+(?:\\w+\\s+){0,2}?(?:instructions?|prompts?|rules?|directions?|guidelines?|context|messages?)"),
        rule("override_en", 0.9, "\\b(?:disregard|ignore|forget)\\s+(?:what|anything|everything)\\s+(?:you\\s+were|you've\\s+been|you\\s+have\\s+been|i|we)\\s+(?:told|said|given|instructed)|\\bsystem\\s+override\\b"),
        rule("prompt_leak_en", 0.85, "\\b(?:print|show|repeat|output|reveal|dump)\\s+(?:\\w+\\s+){0,5}?(?:before|above|preceding|prior\\s+to)\\s+(?:this|the|our)\\s+(?:conversation|chat|message)|\\b(?:reveal|dump|print)\\s+(?:your|the\\s+system|internal|hidden)\\s+(?:configuration|config|settings)"),
        rule("prompt_leak_en", 0.9, "\\b(?:reveal|print|show|output|repeat|display|leak|tell\\s+me|what\\s+(?:is|are))\\b\\s+(?:\\w+\\s+){0,3}?(?:system\\s+prompt|hidden\\s+(?:prompt|instructions?)|initial\\s+(?:prompt|instructions?)|your\\s+(?:instructions|prompt|rules)|system\\s+instructions?|(?:hidden|secret|internal)\\s+(?:\\w+\\s+)?(?:prompt|instructions?|rules))"),
        rule("mode_en", 0.8, "\\b(?:developer|admin|administrator|debug|god|jailbreak|unrestricted|sudo|maintenance)\\s+mode\\b|\\b(?:you\\s+have|there\\s+(?:is|are))\\s+no\\s+(?:content\\s+)?(?:policy|policies|restrictions|rules|filters|guidelines)\\b|\\b(?:act|behave|answer)\\s+(?:\\w+\\s+){0,4}?without\\s+(?:any\\s+)?(?:guidelines|restrictions|rules|filters)\\b|\\byou\\s+are\\s+now\\s+(?:\\w+\\s+){0,3}?(?:unrestricted|unfiltered|free|DAN|evil|without)|\\bact\\s+as\\s+(?:an?\\s+)?(?:unrestricted|unfiltered|evil)|\\bpretend\\s+(?:to\\s+be|you\\s+are)\\b|\\byou\\s+are\\s+(?:\\w+\\s+){0,4}?(?:without|with\\s+no|free\\s+of)\\s+(?:any\\s+)?(?:restrictions|rules|filters|limits|guidelines)"),
        rule("others_data_en", 0.8, "\\b(?:other|all|every)\\s+(?:customers?|users?|members?|clients?)'?s?\\s+(?:\\w+\\s+){0,2}?(?:data|information|records|details|accounts?|numbers?|addresses|emails?)|\\b(?:account\\s+numbers?|phone\\s+numbers?|addresses|emails?|balances?|ssns?|records)\\s+of\\s+(?:the\\s+)?(?:\\w+\\s+){0,3}?(?:customers|users|clients|members|people)\\b|\\bdump\\s+(?:the\\s+)?(?:user|customer|member|client)s?\\s+(?:table|list|database|db)\\b"),
        // Chat-template control tokens and the RAG template's markers inside a question.
        rule("control_token", 0.95, "<\\s*(?:start_of_turn|end_of_turn|bos|eos)\\s*>|<\\|\\s*(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id|begin_of_text)\\s*\\|>|\\[/?INST\\]|<<\\s*/?SYS\\s*>>|</?s>"),
        rule("template_marker", 0.85, "\\[\\s*(?:내용|질문|답변|문서|지시|시스템|system|context|instruction)\\s*\\]|\\[\\s*(?:시스템|system|관리자|운영자)[^\\]\\n]{0,12}\\]|###\\s*(?:instruction|system|지시|시스템)|(?:^|\\n)\\s*(?:system|assistant|시스템)\\s*:"),
    ]

    public func check(_ text: String) -> Result {
        var (score, matches) = Self.score(text)
        // "시 스 템 프 롬 프 트", "s y s t e m": letters spelled one by one are joined and the rules run
        // again; a rule that fires only there spans the whole text.
        if score < threshold, let joined = Self.joiningSpelledOut(text) {
            let (again, found) = Self.score(joined)
            if again > score {
                let length = text.unicodeScalars.count
                score = again
                matches = found.map { Match(rule: $0.rule, start: 0, end: length, weight: $0.weight) }
            }
        }
        return Result(score: score, flagged: score >= threshold, matches: matches)
    }

    static func score(_ text: String) -> (Double, [Match]) {
        let ns = text as NSString
        let whole = NSRange(location: 0, length: ns.length)
        var matches: [Match] = []
        var keep = 1.0
        var fired = Set<String>()
        for r in rules {
            guard let m = r.regex.firstMatch(in: text, range: whole) else { continue }
            let start = PIIDetector.scalarOffset(text, utf16: m.range.location)
            let end = PIIDetector.scalarOffset(text, utf16: m.range.location + m.range.length)
            matches.append(Match(rule: r.name, start: start, end: end, weight: r.weight))
            // One rule name counts once, at its strongest pattern: repeats are not more evidence.
            if fired.insert(r.name).inserted { keep *= 1 - r.weight }
        }
        return (((1 - keep) * 1000).rounded() / 1000, matches)
    }

    /// The text with every run of four or more single letters between spaces written as one word;
    /// nil when it has no such run.
    static func joiningSpelledOut(_ text: String) -> String? {
        let words = text.split(whereSeparator: \.isWhitespace).map(String.init)
        var out: [String] = []
        var run: [String] = []
        var joinedAny = false
        func flush() {
            if run.count >= 4 { out.append(run.joined()); joinedAny = true } else { out += run }
            run = []
        }
        for w in words {
            if w.count == 1, w.first!.isLetter { run.append(w) } else { flush(); out.append(w) }
        }
        flush()
        return joinedAny ? out.joined(separator: " ") : nil
    }
}
