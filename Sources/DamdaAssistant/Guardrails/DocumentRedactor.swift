import DamdaGuardrails
import DamdaRetrieval

/// Masks personal data in documents before they are indexed (`damda ingest --redact-pii`, and
/// uploads to `damda serve --redact-pii`): titles, text and headings get `[주민등록번호]` and the
/// like, so the index, its embeddings and every citation never hold the raw value.
public struct DocumentRedactor: Sendable {
    let detector = PIIDetector()
    public init() {}

    /// Masks in place; returns how many of each type were masked.
    @discardableResult
    public func redact(_ loaded: inout LoadResult) -> [String: Int] {
        var byType: [String: Int] = [:]
        func mask(_ text: String) -> String {
            let found = detector.findings(in: text)
            for f in found { byType[f.type.rawValue, default: 0] += 1 }
            return found.isEmpty ? text : detector.masked(text, findings: found)
        }
        for d in loaded.documents.indices {
            loaded.documents[d].title = mask(loaded.documents[d].title)
            for s in loaded.documents[d].sections.indices {
                loaded.documents[d].sections[s].text = mask(loaded.documents[d].sections[s].text)
                loaded.documents[d].sections[s].headingPath = loaded.documents[d].sections[s].headingPath.map(mask)
            }
        }
        return byType
    }

    /// Free text (a feedback comment) with its personal data masked.
    public func masked(_ text: String) -> String { detector.masked(text) }
}
