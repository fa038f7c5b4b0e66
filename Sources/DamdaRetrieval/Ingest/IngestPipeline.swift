import DamdaCore
import Foundation

public struct IngestSummary: Sendable, Codable {
    public var added = 0, updated = 0, skipped = 0, removed = 0, chunks = 0, problems = 0
    public var seconds = 0.0
}


/// The ingest pipeline: load → chunk → BM25 terms → embed in batches → store (one transaction per
/// batch) → reload the in-memory index.
extension SearchIndex {
    /// Adds new and changed documents, skips unchanged ones (same content hash), and with
    /// `prune` removes documents whose source file is among `loaded.sources` no longer.
    public func ingest(_ loaded: LoadResult, prune: Bool = false, batchSize: Int = 32, progress: Bool = true) throws -> IngestSummary {
        lock.lock()
        defer { lock.unlock() }
        let start = Date()
        var summary = IngestSummary()
        summary.problems = loaded.problems.count
        let known = try store.documentHashes()
        let bar = progress ? ProgressBar(total: Int64(loaded.documents.count), label: "ingest", unit: "docs") : nil
        var batch: [IngestBatchItem] = []
        // Embedding dominates ingest time: the bar counts chunks once an embedder is present.
        func flush() throws {
            guard !batch.isEmpty else { return }
            if let e = embedder {
                let texts = batch.flatMap { $0.chunks.map(\.text) }
                let vecs = e.embed(passages: texts)
                var at = 0
                for i in batch.indices {
                    batch[i].embeddings = Array(vecs[at..<(at + batch[i].chunks.count)])
                    at += batch[i].chunks.count
                }
            }
            try store.replace(batch)
            batch = []
        }
        var seen = Set<String>()
        for (i, doc) in loaded.documents.enumerated() {
            seen.insert(doc.id)
            let hash = doc.contentHash
            if known[doc.id] == hash { summary.skipped += 1; bar?.update(to: Int64(i + 1)); continue }
            if known[doc.id] == nil { summary.added += 1 } else { summary.updated += 1 }
            let cs = chunker.chunk(doc)
            summary.chunks += cs.count
            batch.append(IngestBatchItem(document: doc, hash: hash, chunks: cs, terms: cs.map(chunkTerms), embeddings: []))
            if batch.count >= batchSize { try flush() }
            bar?.update(to: Int64(i + 1))
        }
        try flush()
        bar?.finish()
        if prune {
            let gone = try store.documents().filter { !seen.contains($0.id) }.map(\.id)
            try store.remove(documentIDs: gone)
            summary.removed = gone.count
        }
        try reload()
        summary.seconds = Date().timeIntervalSince(start)
        return summary
    }

}
