import Crypto
import DamdaDatasets
import Foundation

/// What ratings become: eval items (`damda eval --qa`), RAG training examples (`damda train
/// --format rag`), preference pairs (chosen / rejected, the prompt/chosen/rejected layout of DPO
/// trainers), or the negatives with their suggested triage labels.
public enum FeedbackExportKind: String, Sendable, Codable, CaseIterable { case eval, sft, dpo, triage }

/// One eval item: the `{id, question, answers, doc_id}` of `damda eval --qa`. No answers and no
/// doc_id: a question the documents do not answer (its "not found" was rated up).
public struct FeedbackEvalItem: Sendable, Codable, Equatable {
    public var id: String
    public var question: String
    public var answers: [String]
    public var documentID: String?
    public var feedbackID: Int64
    public var rating: Rating
    public var triage: TriageLabel?
    enum CodingKeys: String, CodingKey {
        case id, question, answers, rating, triage, documentID = "doc_id", feedbackID = "feedback_id"
    }
}

/// One RAG training example: the `{question, context, answer, doc_id}` of `damda train --format rag`,
/// the context the one that holds the answer (as served, or the index chunk that has it).
public struct FeedbackSFTExample: Sendable, Codable, Equatable {
    public var id: String
    public var question: String
    public var context: String
    public var answer: String
    public var documentID: String?
    /// The rating the example comes from (nil for a correction written on the A/B panel).
    public var feedbackID: Int64?
    /// "correction" (a down-rated answer's correction), "approved" (an answer rated up) or
    /// "panel_correction" (a correction written on the A/B panel).
    public var kind: String
    public var triage: TriageLabel?
    enum CodingKeys: String, CodingKey {
        case id, question, context, answer, kind, triage, documentID = "doc_id", feedbackID = "feedback_id"
    }
}

/// One preference pair: the served answer rejected, its correction chosen, on the same prompt.
public struct FeedbackPreferencePair: Sendable, Codable, Equatable {
    public var id: String
    /// The whole RAG prompt the rejected answer was generated from.
    public var prompt: String
    public var question: String
    public var context: String
    public var chosen: String
    public var rejected: String
    public var documentID: String?
    /// The rating the pair comes from (nil for an A/B vote).
    public var feedbackID: Int64?
    /// "correction" (a down-rated answer and its correction) or "ab" (a blind A/B vote).
    public var kind: String
    /// The A/B vote and the configurations behind the answers.
    public var voteID: Int64?
    public var chosenConfig: String?
    public var rejectedConfig: String?
    enum CodingKeys: String, CodingKey {
        case id, prompt, question, context, chosen, rejected, kind, documentID = "doc_id", feedbackID = "feedback_id"
        case voteID = "vote_id", chosenConfig = "chosen_config", rejectedConfig = "rejected_config"
    }
}

/// A negative rating with its suggested label and the evidence for it.
public struct FeedbackTriageRow: Sendable, Codable, Equatable {
    public var id: String
    public var question: String
    public var answer: String
    public var correction: String
    public var comment: String
    public var label: TriageLabel
    public var why: String
    public var documentID: String?
    public var feedbackID: Int64
    enum CodingKeys: String, CodingKey {
        case id, question, answer, correction, comment, label, why, documentID = "doc_id", feedbackID = "feedback_id"
    }
}

/// What an export holds and how it was made: the rows' SHA-256 names this version of the data.
public struct FeedbackExportManifest: Sendable, Codable {
    public var schema = "damda.feedback-export.v1"
    public var kind: FeedbackExportKind
    public var createdAt: String
    public var since: String?
    /// Ratings read, and answers they rate (one answer rated twice counts once: its latest rating).
    public var ratings: Int
    public var answers: Int
    public var rows: Int
    public var latestFeedbackID: Int64?
    /// Reasons ratings gave no row, with counts.
    public var skipped: [String: Int]
    public var duplicates: Int
    public var triage: [String: Int]
    /// Questions whose correction no document holds: what to add to the index.
    public var missingDocuments: [String]
    public var sha256: String
    enum CodingKeys: String, CodingKey {
        case schema, kind, since, ratings, answers, rows, skipped, duplicates, triage, sha256
        case createdAt = "created_at", latestFeedbackID = "latest_feedback_id", missingDocuments = "missing_documents"
    }
}

/// Turns the feedback store's ratings into eval and training data. An answer rated more than once
/// counts once, with its latest rating and its latest non-empty comment and correction; rows
/// whose question and target repeat are dropped; personal data is masked again in every text
/// (the server masks questions, comments and corrections as it stores them; this holds when a
/// store was filled with `--pii allow`).
public struct FeedbackExport: Sendable {
    public var kind: FeedbackExportKind
    public var since: Date?
    /// sft: also answers rated up (their served context and answer, or their "not found").
    public var includeApproved = false
    public var template = PromptTemplate.korean
    public let triage: FeedbackTriage

    public init(kind: FeedbackExportKind, since: Date? = nil, triage: FeedbackTriage) {
        self.kind = kind; self.since = since; self.triage = triage
    }

    /// One rating per answer: its latest, with the last non-empty comment and correction given.
    static func latestPerAnswer(_ records: [FeedbackRecord]) -> [FeedbackRecord] {
        var byAnswer: [String: FeedbackRecord] = [:]
        var order: [String] = []
        for f in records.sorted(by: { $0.id < $1.id }) {
            guard var r = byAnswer[f.answer.id] else { byAnswer[f.answer.id] = f; order.append(f.answer.id); continue }
            r.id = f.id; r.rating = f.rating; r.createdAt = f.createdAt
            if !f.comment.isEmpty { r.comment = f.comment }
            if !f.correction.isEmpty { r.correction = f.correction }
            byAnswer[f.answer.id] = r
        }
        return order.compactMap { byAnswer[$0] }
    }

    /// The document an answer drew on: its first used citation's, else its first citation's.
    static func document(of answer: AnswerRecord) -> String? {
        (answer.citations.first(where: \.used) ?? answer.citations.first)?.documentID
    }

    /// The export's JSONL text and its manifest; `preferences` (blind A/B votes) join the dpo
    /// export, `panelCorrections` (corrections written on the panel) the sft export.
    public func run(_ records: [FeedbackRecord], preferences: [PanelPreference] = [], panelCorrections: [PanelCorrection] = [],
                    now: Date = Date()) throws -> (jsonl: String, manifest: FeedbackExportManifest) {
        let mask = DocumentRedactor()
        let considered = records.filter { since == nil || $0.createdAt >= since! }
        let rated = Self.latestPerAnswer(considered)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var lines: [String] = []
        var seen = Set<String>()
        var skipped: [String: Int] = [:], triageCounts: [String: Int] = [:]
        var duplicates = 0
        var missing: [String] = []
        func emit<T: Encodable>(_ row: T, key: String) throws {
            guard seen.insert(key).inserted else { duplicates += 1; return }
            lines.append(String(decoding: try encoder.encode(row), as: UTF8.self))
        }
        func normalized(_ s: String) -> String {
            s.precomposedStringWithCanonicalMapping.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        }
        for r in rated {
            let question = mask.masked(r.answer.question)
            let answer = mask.masked(r.answer.answer)
            let correction = mask.masked(r.correction)
            let id = "fb-\(r.id)"
            var finding: TriageFinding?
            if r.rating == .down {
                let f = try triage.triage(question: question, answer: r.answer, correction: correction)
                triageCounts[f.label.rawValue, default: 0] += 1
                if f.label == .missingDocument { missing.append(question) }
                finding = f
            }
            let refused = answer == PromptTemplate.refusal
            switch kind {
            case .triage:
                guard let f = finding else { skipped["rated up", default: 0] += 1; continue }
                try emit(FeedbackTriageRow(id: id, question: question, answer: answer, correction: correction, comment: mask.masked(r.comment),
                                           label: f.label, why: f.why, documentID: f.documentID, feedbackID: r.id),
                         key: "\(r.id)")
            case .eval:
                if let f = finding {
                    switch f.label {
                    case .needsCorrection: skipped["rated down without a correction (no gold answer)", default: 0] += 1
                    case .missingDocument: skipped["correction no document holds (see missing_documents)", default: 0] += 1
                    case .wrongAnswer, .retrievalMiss:
                        try emit(FeedbackEvalItem(id: id, question: question, answers: [correction], documentID: f.documentID,
                                                  feedbackID: r.id, rating: .down, triage: f.label),
                                 key: normalized(question) + "\u{0}" + normalized(correction))
                    }
                } else if refused {
                    try emit(FeedbackEvalItem(id: id, question: question, answers: [], documentID: nil, feedbackID: r.id, rating: .up, triage: nil),
                             key: normalized(question) + "\u{0}")
                } else {
                    try emit(FeedbackEvalItem(id: id, question: question, answers: [answer], documentID: Self.document(of: r.answer), feedbackID: r.id, rating: .up, triage: nil),
                             key: normalized(question) + "\u{0}" + normalized(answer))
                }
            case .sft:
                if let f = finding {
                    guard let context = f.context, f.label == .wrongAnswer || f.label == .retrievalMiss else {
                        skipped[f.label == .needsCorrection ? "rated down without a correction (no target)"
                                                           : "correction no document holds (see missing_documents)", default: 0] += 1
                        continue
                    }
                    try emit(FeedbackSFTExample(id: id, question: question, context: mask.masked(context), answer: correction, documentID: f.documentID,
                                                feedbackID: r.id, kind: "correction", triage: f.label),
                             key: normalized(question) + "\u{0}" + normalized(correction))
                } else if includeApproved, !r.answer.citations.isEmpty {
                    try emit(FeedbackSFTExample(id: id, question: question, context: mask.masked(Citation.context(r.answer.citations)), answer: answer,
                                                documentID: refused ? nil : Self.document(of: r.answer), feedbackID: r.id, kind: "approved", triage: nil),
                             key: normalized(question) + "\u{0}" + normalized(answer))
                } else {
                    skipped[includeApproved ? "rated up without sources" : "rated up (--include-approved adds these)", default: 0] += 1
                }
            case .dpo:
                guard let f = finding else { skipped["rated up (no pair)", default: 0] += 1; continue }
                guard f.label == .wrongAnswer, let context = f.context else {
                    let reason: String
                    switch f.label {
                    case .needsCorrection: reason = "rated down without a correction (no chosen answer)"
                    case .retrievalMiss: reason = "retrieval miss (the served prompt lacks the correction; the sft export pairs it with the chunk that has it)"
                    default: reason = "correction no document holds (see missing_documents)"
                    }
                    skipped[reason, default: 0] += 1
                    continue
                }
                guard normalized(correction) != normalized(answer) else { skipped["correction equals the answer", default: 0] += 1; continue }
                let maskedContext = mask.masked(context)
                try emit(FeedbackPreferencePair(id: id, prompt: template.render(question: question, context: maskedContext), question: question,
                                                context: maskedContext, chosen: correction, rejected: answer, documentID: f.documentID,
                                                feedbackID: r.id, kind: "correction"),
                         key: normalized(question) + "\u{0}" + normalized(correction) + "\u{0}" + normalized(answer))
            }
        }
        if kind == .sft {
            // A correction on the panel trains with a context shown beside it that holds it.
            for c in panelCorrections {
                let question = mask.masked(c.question), correction = mask.masked(c.correction)
                let holding = c.answers.map { ($0, Grounding.support(of: correction, in: [$0.context])) }.max { $0.1 < $1.1 }
                guard let (answer, support) = holding, support >= triage.supportThreshold else {
                    skipped["panel correction that neither shown context holds", default: 0] += 1; continue
                }
                try emit(FeedbackSFTExample(id: "ab-\(c.voteID)", question: question, context: mask.masked(answer.context), answer: correction,
                                            documentID: nil, feedbackID: nil, kind: "panel_correction", triage: .wrongAnswer),
                         key: normalized(question) + "\u{0}" + normalized(correction))
            }
        }
        if kind == .dpo {
            // An A/B vote: the winner's answer over the loser's, on the winner's prompt.
            for p in preferences {
                let question = mask.masked(p.question), context = mask.masked(p.chosen.context)
                let chosen = mask.masked(p.chosen.answer), rejected = mask.masked(p.rejected.answer)
                guard normalized(chosen) != normalized(rejected) else { skipped["A/B vote between identical answers", default: 0] += 1; continue }
                try emit(FeedbackPreferencePair(id: "ab-\(p.voteID)", prompt: template.render(question: question, context: context), question: question,
                                                context: context, chosen: chosen, rejected: rejected, documentID: nil, feedbackID: nil,
                                                kind: "ab", voteID: p.voteID, chosenConfig: p.chosen.config, rejectedConfig: p.rejected.config),
                         key: normalized(question) + "\u{0}" + normalized(chosen) + "\u{0}" + normalized(rejected))
            }
        }
        let jsonl = lines.map { $0 + "\n" }.joined()
        let digest = SHA256.hash(data: Data(jsonl.utf8)).map { String(format: "%02x", $0) }.joined()
        let iso = ISO8601DateFormatter()
        let manifest = FeedbackExportManifest(
            kind: kind, createdAt: iso.string(from: now), since: since.map { iso.string(from: $0) }, ratings: considered.count,
            answers: rated.count, rows: lines.count, latestFeedbackID: considered.map(\.id).max(), skipped: skipped, duplicates: duplicates,
            triage: triageCounts, missingDocuments: missing, sha256: digest)
        return (jsonl, manifest)
    }
}
