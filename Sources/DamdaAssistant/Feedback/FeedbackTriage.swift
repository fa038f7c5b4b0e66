import DamdaDatasets
import DamdaRetrieval
import Foundation

/// Why a down-rated answer went wrong, suggested from the grounding metric.
public enum TriageLabel: String, Sendable, Codable, CaseIterable {
    /// The served sources hold the correction: the model missed it.
    case wrongAnswer = "wrong_answer"
    /// The index holds the correction, but not in what was served: retrieval missed it.
    case retrievalMiss = "retrieval_miss"
    /// No chunk of the index holds it: a document is missing.
    case missingDocument = "missing_document"
    /// No correction to check against (the rating alone says something was wrong).
    case needsCorrection = "needs_correction"
}

/// A triage label, with where the correction was found and the context that holds it.
public struct TriageFinding: Sendable, Equatable {
    public var label: TriageLabel
    /// Share of the correction's content units (syllable bigrams, numbers) in the served sources.
    public var servedSupport: Double?
    /// The document whose chunk holds the correction best (nil: none does).
    public var documentID: String?
    /// A prompt context that holds the correction: the served one, or the index chunk that has it.
    public var context: String?
    public var why: String
}

/// Labels a negative rating: is the correction in the served sources (the model missed it), in
/// the index (retrieval missed it), or nowhere (a document is missing)? "Holds" is
/// `Grounding.support` — the share of the correction's content units found in a text — at
/// least `supportThreshold`.
public struct FeedbackTriage: Sendable {
    public let index: SearchIndex
    public var supportThreshold = 0.8
    /// Chunks searched (BM25 on question + correction) for one that holds the correction.
    public var searchDepth = 10

    public init(index: SearchIndex) { self.index = index }

    public func triage(question: String, answer: AnswerRecord, correction: String) throws -> TriageFinding {
        let correction = correction.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !correction.isEmpty else {
            if answer.citations.isEmpty {
                return TriageFinding(label: .needsCorrection, documentID: nil, context: nil,
                                     why: "no correction; no source reached the prompt, so retrieval is the first suspect")
            }
            let support = Grounding.support(of: answer.answer, in: answer.citations.map(\.text))
            return TriageFinding(label: .needsCorrection, servedSupport: nil, documentID: nil, context: nil,
                                 why: support == 0 ? "no correction; the answer shares nothing with its sources"
                                                   : String(format: "no correction; %.0f%% of the answer is in its sources", support * 100))
        }
        let served = Grounding.support(of: correction, in: answer.citations.map(\.text))
        if served >= supportThreshold, let best = answer.citations.max(by: {
            Grounding.support(of: correction, in: [$0.text]) < Grounding.support(of: correction, in: [$1.text])
        }) {
            return TriageFinding(label: .wrongAnswer, servedSupport: served, documentID: best.documentID,
                                 context: Citation.context(answer.citations),
                                 why: String(format: "%.0f%% of the correction is in the served sources: the model missed it", served * 100))
        }
        let hits = try index.search(question + " " + correction, k: searchDepth, mode: .bm25).hits
        let scored = hits.map { ($0, Grounding.support(of: correction, in: [$0.chunk.text])) }
        if let (hit, support) = scored.max(by: { $0.1 < $1.1 }), support >= supportThreshold {
            let header = ContextBuilder.header(1, hit)
            return TriageFinding(label: .retrievalMiss, servedSupport: served, documentID: hit.chunk.documentID,
                                 context: ContextBuilder.render([(header, hit.chunk.text)]),
                                 why: String(format: "%.0f%% of the correction is in the served sources, %.0f%% in chunk %@ of the index: retrieval missed it",
                                             served * 100, support * 100, hit.chunk.id))
        }
        return TriageFinding(label: .missingDocument, servedSupport: served, documentID: nil, context: nil,
                             why: String(format: "%.0f%% of the correction is in the served sources and no chunk of the index holds it: a document is missing",
                                         served * 100))
    }
}
