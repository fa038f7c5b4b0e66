import Crypto
import Foundation

/// A source document as parsed: sections keep their heading path and page.
public struct Document: Sendable {
    public struct Section: Sendable {
        public var text: String
        public var headingPath: [String]
        public var page: Int?
        public init(text: String, headingPath: [String] = [], page: Int? = nil) {
            self.text = text; self.headingPath = headingPath; self.page = page
        }
    }

    /// Stable id: the given id (JSONL/CSV) or the source path.
    public var id: String
    public var title: String
    public var source: String
    public var sections: [Section]
    public var tags: [String] = []

    public init(id: String, title: String, source: String, sections: [Section], tags: [String] = []) {
        self.id = id; self.title = title; self.source = source; self.sections = sections; self.tags = tags
    }

    /// Content hash: re-ingesting an unchanged document is skipped.
    public var contentHash: String {
        var h = SHA256()
        h.update(data: Data(title.utf8))
        for s in sections {
            h.update(data: Data(s.headingPath.joined(separator: "\u{1F}").utf8))
            h.update(data: Data("\u{1E}\(s.page ?? 0)\u{1E}".utf8))
            h.update(data: Data(s.text.utf8))
        }
        return h.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

