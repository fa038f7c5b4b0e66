import DamdaRetrieval
import Foundation

/// Chooses the semantic cache's cosine threshold: on pairs that mean the same (paraphrases) a hit
/// is wanted, on pairs that differ in one telling word (near misses: 있나요/없나요, 3년/5년,
/// 자동차보험/실손보험) a hit is a wrong answer. For each threshold it counts both, with the
/// signature check and without it, so a report shows what the cosine alone would have served.
public struct SemanticCacheCalibration: Sendable {
    public struct Pair: Codable, Sendable {
        public var a: String
        public var b: String
        public var kind: String?
    }

    public struct PairResult: Codable, Sendable {
        public var a: String, b: String, kind: String?
        public var cosine: Float
        public var signatureMatches: Bool
        enum CodingKeys: String, CodingKey { case a, b, kind, cosine, signatureMatches = "signature_matches" }
    }

    public struct Row: Codable, Sendable {
        public var threshold: Float
        public var paraphraseHitRate: Double
        public var nearMissFalseHits: Int
        /// What the cosine alone would serve: near misses above the threshold without the signature check.
        public var nearMissFalseHitsCosineOnly: Int
        public var paraphraseHitRateCosineOnly: Double
        enum CodingKeys: String, CodingKey {
            case threshold, paraphraseHitRate = "paraphrase_hit_rate", nearMissFalseHits = "near_miss_false_hits"
            case nearMissFalseHitsCosineOnly = "near_miss_false_hits_cosine_only", paraphraseHitRateCosineOnly = "paraphrase_hit_rate_cosine_only"
        }
    }

    public struct Latency: Codable, Sendable {
        public var entries: Int
        public var exactMedianMs: Double, exactP99Ms: Double
        public var semanticMedianMs: Double, semanticP99Ms: Double
        enum CodingKeys: String, CodingKey {
            case entries, exactMedianMs = "exact_median_ms", exactP99Ms = "exact_p99_ms"
            case semanticMedianMs = "semantic_median_ms", semanticP99Ms = "semantic_p99_ms"
        }
    }

    public struct Report: Codable, Sendable {
        public var embedder: String
        public var paraphrases: Int, nearMisses: Int
        public var threshold: Float
        public var chosen: Row
        public var sweep: [Row]
        public var nearMissesAboveThreshold: [PairResult]
        public var paraphrasesMissed: [PairResult]
        public var latency: Latency
        enum CodingKeys: String, CodingKey {
            case embedder, paraphrases, threshold, chosen, sweep, latency
            case nearMisses = "near_misses", nearMissesAboveThreshold = "near_misses_above_threshold", paraphrasesMissed = "paraphrases_missed"
        }
    }

    public var thresholds: [Float] = stride(from: Float(0.80), through: 0.99, by: 0.01).map { ($0 * 100).rounded() / 100 }
    public init() {}

    public static func read(_ path: String) throws -> [Pair] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw AssistantError.unreadable(path) }
        return try text.split(separator: "\n").enumerated().compactMap { n, line in
            if line.trimmingCharacters(in: .whitespaces).isEmpty { return nil }
            guard let p = try? JSONDecoder().decode(Pair.self, from: Data(line.utf8)) else { throw AssistantError.malformedLine(path, n + 1) }
            return p
        }
    }

    func score(_ pairs: [Pair], embedder: any Embedder) -> [PairResult] {
        pairs.map { p in
            let (u, v) = (embedder.embed(query: p.a), embedder.embed(query: p.b))
            return PairResult(a: p.a, b: p.b, kind: p.kind, cosine: zip(u, v).reduce(0) { $0 + $1.0 * $1.1 },
                              signatureMatches: QuestionSignature(p.a).matches(QuestionSignature(p.b)))
        }
    }

    /// The sweep, and at `threshold` the pairs that decide it; latency measured on a cache of
    /// `entries` answers in a fresh SQLite file at `scratch`.
    public func run(paraphrases: [Pair], nearMisses: [Pair], embedder: any Embedder, threshold: Float,
                    scratch: String, entries: Int = 1000) throws -> Report {
        let para = score(paraphrases, embedder: embedder), near = score(nearMisses, embedder: embedder)
        func row(_ t: Float) -> Row {
            func share(_ n: Int, _ d: Int) -> Double { d == 0 ? 0 : (Double(n) / Double(d) * 1000).rounded() / 1000 }
            return Row(threshold: t,
                       paraphraseHitRate: share(para.filter { $0.cosine >= t && $0.signatureMatches }.count, para.count),
                       nearMissFalseHits: near.filter { $0.cosine >= t && $0.signatureMatches }.count,
                       nearMissFalseHitsCosineOnly: near.filter { $0.cosine >= t }.count,
                       paraphraseHitRateCosineOnly: share(para.filter { $0.cosine >= t }.count, para.count))
        }
        return Report(embedder: embedder.name, paraphrases: para.count, nearMisses: near.count, threshold: threshold, chosen: row(threshold),
                      sweep: thresholds.map(row),
                      nearMissesAboveThreshold: near.filter { $0.cosine >= threshold }.sorted { $0.cosine > $1.cosine },
                      paraphrasesMissed: para.filter { !($0.cosine >= threshold && $0.signatureMatches) },
                      latency: try latency(embedder: embedder, questions: paraphrases.flatMap { [$0.a, $0.b] }, scratch: scratch,
                                           entries: entries, threshold: threshold))
    }

    /// Lookup cost with `entries` answers stored: exact hits, and semantic hits (vector given,
    /// every entry under the same settings compared).
    func latency(embedder: any Embedder, questions: [String], scratch: String, entries: Int, threshold: Float) throws -> Latency {
        try? FileManager.default.removeItem(atPath: scratch)
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: scratch + suffix) } }
        let cache = try AnswerCache(path: scratch)
        var settings = AnswerCacheSettings()
        settings.semantic = true
        settings.semanticThreshold = threshold
        var config = AssistantConfig()
        config.cache = settings
        let vectors = questions.map { embedder.embed(query: $0) }
        let citation = Citation(n: 1, chunkID: "doc#0", documentID: "doc", title: "약관", source: "policy.md", page: nil, heading: ["제5조"],
                                score: 1, relevance: 1, text: String(repeating: "보험금은 청구서류를 접수한 날부터 3영업일 이내에 지급합니다. ", count: 8),
                                bestSentence: "보험금은 청구서류를 접수한 날부터 3영업일 이내에 지급합니다.", used: true)
        var keys: [CacheKey] = []
        for i in 0..<entries {
            let q = questions[i % questions.count] + (i < questions.count ? "" : " \(i)")
            let key = CacheKey(question: q, config: config, model: "bench", adapter: nil, indexIdentity: "bench")
            keys.append(key)
            let answer = AssistantAnswer(
                id: "ans_\(i)", question: q, standaloneQuestion: q, rewrite: "none", answer: "청구서류 접수 후 3영업일 이내에 지급합니다.", rawAnswer: "",
                refused: false, refusalReason: nil, echoOnly: false, citations: Array(repeating: citation, count: 3),
                context: ContextReport(budgetTokens: 512, promptTokens: 400, chunksUsed: 3, truncated: false),
                usage: Usage(promptTokens: 400, completionTokens: 20), timings: Timings(retrievalMs: 30, generationMs: 900, totalMs: 930),
                model: "bench", adapter: nil, finishReason: "stop")
            try cache.store(key: key, question: q, embedding: vectors[i % vectors.count], answer: answer, sources: ["doc": "h"],
                            contentVersion: "v", settings: settings)
        }
        func time(_ body: () -> Void) -> Double {
            let start = ContinuousClock.now
            body()
            let d = ContinuousClock.now - start
            return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        }
        var exact: [Double] = [], semantic: [Double] = []
        var exactOnly = settings
        exactOnly.semantic = false
        for i in 0..<min(entries, 500) {
            exact.append(time { _ = cache.lookup(key: keys[i], question: questions[i % questions.count], embedding: nil, settings: exactOnly, isCurrent: { _ in true }) })
            let other = CacheKey(question: "캐시에 없는 질문 \(i)", config: config, model: "bench", adapter: nil, indexIdentity: "bench")
            semantic.append(time { _ = cache.lookup(key: other, question: questions[i % questions.count], embedding: vectors[i % vectors.count],
                                                    settings: settings, isCurrent: { _ in true }) })
        }
        func pct(_ xs: [Double], _ p: Double) -> Double {
            let s = xs.sorted()
            return ((s[min(s.count - 1, Int(Double(s.count - 1) * p))]) * 1000).rounded() / 1000
        }
        return Latency(entries: entries, exactMedianMs: pct(exact, 0.5), exactP99Ms: pct(exact, 0.99),
                       semanticMedianMs: pct(semantic, 0.5), semanticP99Ms: pct(semantic, 0.99))
    }
}
