import DamdaCore

public enum RetrievalError: DamdaError {
    case analyzerMismatch(index: String, requested: String)
    case unknownAnalyzer(String)
    case noEmbeddings(SearchMode)
    case vectorsInStore(String)
    case indexIsAFile(String)
    public var message: String {
        switch self {
        case let .indexIsAFile(p): "\(p) is a file: an index is a directory (its database is DIR/index.sqlite); give the directory"
        case let .vectorsInStore(what): "\(what) needs the chunks' vectors in this process, but the store searches them in place: open the index with --vector-search memory"
        case let .noEmbeddings(m): "\(m.rawValue) search needs chunk embeddings: fetch the embedding model (`damda model fetch --embedding`) and re-ingest, or use --mode bm25"
        case let .analyzerMismatch(i, r): "the index was built with the '\(i)' analyzer, not '\(r)': re-ingest into a new index to change it"
        case let .unknownAnalyzer(a): "unknown analyzer '\(a)' (whitespace, bigram, particle)"
        }
    }
}

public enum IngestError: Error, CustomStringConvertible, Sendable {
    case unreadable(String, reason: String)
    case binary(String)
    case empty(String)
    case unsupported(String)
    case toolMissing(String, tool: String)
    case badLine(String, line: Int, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(p, r): "\(p): cannot read (\(r))"
        case let .binary(p): "\(p): binary content, not text: skipped"
        case let .empty(p): "\(p): empty document: skipped"
        case let .unsupported(p): "\(p): unsupported file type (txt, md, html, pdf, jsonl, csv are): skipped"
        case let .toolMissing(p, tool): "\(p): needs `\(tool)` (apt-get install poppler-utils): skipped"
        case let .badLine(p, line, r): "\(p):\(line): \(r): line skipped"
        }
    }
}
