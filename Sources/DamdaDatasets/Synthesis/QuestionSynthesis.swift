import DamdaCore
import DamdaRetrieval
import Foundation

/// The filters a synthesized question must pass, each counted in the summary.
public struct SynthesisFilters: Sendable {
    /// Damda's own retriever must find the source chunk among this many hits (round-trip consistency).
    public var roundTripK = 5
    public var questionLength = 6...150
    public var answerLength = 1...40
    /// Questions whose syllable-trigram Jaccard with a kept question of the same document reaches this are near-duplicates.
    public var nearDuplicate = 0.85
    /// Fewer topic terms than this (after question words) and a question could be asked of any chunk.
    public var minimumTopicTerms = 2
    /// A noun answer whose rarest term has a lower IDF than this is a common word ("과정", "도움"), not a
    /// name or a term a question would ask for.
    public var minimumNounAnswerIDF: Float = 3.5
    public init() {}
}

/// What `damda data synthesize` made and dropped.
public struct SynthesisSummary: Codable, Sendable {
    public var chunks = 0
    /// Chunks with no answerable span (no amount, date, definition, term or institution found).
    public var chunksWithoutSpan = 0
    public var candidates = 0
    public var kept = 0
    /// Filter → questions it dropped: not_a_span, length, duplicate, near_duplicate, common_answer, generic, round_trip.
    public var dropped: [String: Int] = [:]
    /// Generator → questions kept.
    public var kept_by_generator: [String: Int] = [:]
    public var seconds = 0.0
    public var questionsPerSecond = 0.0
    /// With a teacher: requests sent, and chunks that got no questions by reason (timeout, HTTP
    /// error, unreachable, malformed JSON, refused). Those chunks are not marked done, so a rerun asks again.
    public var teacherRequests: Int?
    public var teacherFailures: [String: Int]?

    enum CodingKeys: String, CodingKey {
        case chunks, candidates, kept, dropped, seconds
        case chunksWithoutSpan = "chunks_without_span", kept_by_generator = "kept_by_generator", questionsPerSecond = "questions_per_s"
        case teacherRequests = "teacher_requests", teacherFailures = "teacher_failures"
    }
}

/// Documents → filtered synthetic questions, resumable: chunks already done are skipped and the
/// questions already written seed the duplicate checks.
public struct QuestionSynthesis {
    public let index: SearchIndex
    public var synthesizer = ExtractiveSynthesizer()
    /// When set, questions come from this model instead of the extractive rules.
    public var teacher: TeacherSynthesizer?
    /// At most this many teacher requests per second (0: no limit), so a shared endpoint is not flooded.
    public var teacherRequestsPerSecond = 0.0
    public var filters = SynthesisFilters()
    public var mode: SearchMode
    /// Only chunks of these documents (nil: every chunk).
    public var documents: Set<String>?
    public var progress = true
    /// Told the first teacher failure's reason and text (the rest are only counted).
    public var onFirstFailure: (@Sendable (String) -> Void)?

    public init(index: SearchIndex, mode: SearchMode) { self.index = index; self.mode = mode }

    /// Spaces and punctuation removed, lowercased: the form exact duplicates are compared in.
    static func normalized(_ s: String) -> String {
        String(s.lowercased().unicodeScalars.filter { $0.properties.isAlphabetic || $0.properties.numericType != nil }.map(Character.init))
    }

    static func trigrams(_ s: String) -> Set<String> {
        let c = Array(normalized(s))
        guard c.count >= 3 else { return [String(c)] }
        return Set((0...(c.count - 3)).map { String(c[$0..<($0 + 3)]) })
    }

    public func run(existing: [SynthesizedQuestion], doneChunks: Set<String>,
                    emit: (SynthesizedQuestion) throws -> Void, chunkDone: (String) throws -> Void) async throws -> SynthesisSummary {
        let start = Date()
        var summary = SynthesisSummary()
        var seen = Set(existing.map { Self.normalized($0.question) })
        var shingles: [String: [Set<String>]] = [:]
        for q in existing { shingles[q.documentID, default: []].append(Self.trigrams(q.question)) }
        var nextID = existing.count
        let chunks = index.indexedChunks.map(\.chunk).filter { c in documents.map { $0.contains(c.documentID) } ?? true }
        let bar = progress ? ProgressBar(total: Int64(chunks.count), label: "synthesize", unit: "chunks") : nil
        func drop(_ why: String) { summary.dropped[why, default: 0] += 1 }
        var lastRequest: Date?
        var firstFailure: String?
        if teacher != nil { summary.teacherRequests = 0; summary.teacherFailures = [:] }
        for (i, chunk) in chunks.enumerated() {
            defer { bar?.update(to: Int64(i + 1)) }
            guard !doneChunks.contains(chunk.id) else { continue }
            summary.chunks += 1
            let candidates: [SynthesizedQuestion]
            if let teacher {
                if teacherRequestsPerSecond > 0, let last = lastRequest {
                    let wait = 1 / teacherRequestsPerSecond - Date().timeIntervalSince(last)
                    if wait > 0 { try await Task.sleep(nanoseconds: UInt64(wait * 1e9)) }
                }
                lastRequest = Date()
                let outcome = await teacher.questions(for: chunk)
                summary.teacherRequests = (summary.teacherRequests ?? 0) + outcome.requests
                if let failure = outcome.failure {
                    summary.teacherFailures = summary.teacherFailures ?? [:]
                    summary.teacherFailures![failure.rawValue, default: 0] += 1
                    if firstFailure == nil { firstFailure = outcome.detail; onFirstFailure?("\(failure.rawValue): \(outcome.detail ?? "")") }
                    continue   // not marked done: a rerun asks the teacher again
                }
                candidates = outcome.questions
            } else {
                candidates = synthesizer.questions(for: chunk)
            }
            if candidates.isEmpty { summary.chunksWithoutSpan += 1 }
            for var q in candidates {
                summary.candidates += 1
                guard q.answers.allSatisfy({ chunk.text.contains($0) }) else { drop("not_a_span"); continue }
                guard filters.questionLength.contains(q.question.count), q.answers.allSatisfy({ filters.answerLength.contains($0.count) }) else {
                    drop("length"); continue
                }
                let key = Self.normalized(q.question)
                guard !seen.contains(key) else { drop("duplicate"); continue }
                let grams = Self.trigrams(q.question)
                let near = (shingles[q.documentID] ?? []).contains { other in
                    Double(grams.intersection(other).count) / Double(max(grams.union(other).count, 1)) >= filters.nearDuplicate
                }
                guard !near else { drop("near_duplicate"); continue }
                if q.generator == "extractive/noun" {
                    let rarest = q.answers.map { index.queryTerms($0).weights.values.max() ?? 0 }.min() ?? 0
                    guard rarest >= filters.minimumNounAnswerIDF else { drop("common_answer"); continue }
                }
                let hits = try index.search(q.question, k: filters.roundTripK, mode: mode)
                guard hits.terms.weights.count >= filters.minimumTopicTerms else { drop("generic"); continue }
                guard hits.contains(where: { $0.chunk.id == chunk.id }) else { drop("round_trip"); continue }
                seen.insert(key)
                shingles[q.documentID, default: []].append(grams)
                q.id = "syn-\(nextID)"
                nextID += 1
                try emit(q)
                summary.kept += 1
                summary.kept_by_generator[q.generator, default: 0] += 1
            }
            try chunkDone(chunk.id)
        }
        bar?.finish()
        summary.seconds = (Date().timeIntervalSince(start) * 100).rounded() / 100
        summary.questionsPerSecond = summary.seconds > 0 ? (Double(summary.kept) / summary.seconds * 10).rounded() / 10 : 0
        return summary
    }
}
