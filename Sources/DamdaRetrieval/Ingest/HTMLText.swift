import Foundation

/// HTML to text without markup: scripts/styles dropped, block tags become line breaks,
/// h1–h6 open sections with their heading path, entities decoded.
enum HTMLText {
    static func document(path: String, html: String) throws -> Document {
        var sections: [Document.Section] = []
        var headings: [(Int, String)] = []
        var title: String?
        var buf = ""
        var i = html.startIndex
        func flush() {
            let t = buf.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: "\n")
            if !t.isEmpty { sections.append(.init(text: decode(t), headingPath: headings.map(\.1))) }
            buf = ""
        }
        while i < html.endIndex {
            if html[i] == "<", let close = html[i...].firstIndex(of: ">") {
                let tag = html[html.index(after: i)..<close].lowercased()
                let name = tag.split(whereSeparator: { $0 == " " || $0 == "/" }).first.map(String.init) ?? ""
                if name == "script" || name == "style" {
                    if let end = html.range(of: "</\(name)", options: .caseInsensitive, range: close..<html.endIndex),
                       let gt = html[end.upperBound...].firstIndex(of: ">") { i = html.index(after: gt); continue }
                }
                if name.count == 2, name.first == "h", let level = Int(String(name.last!)), (1...6).contains(level),
                   let end = html.range(of: "</\(name)", options: .caseInsensitive, range: close..<html.endIndex) {
                    flush()
                    let inner = decode(stripTags(String(html[html.index(after: close)..<end.lowerBound]))).trimmingCharacters(in: .whitespacesAndNewlines)
                    headings.removeAll { $0.0 >= level }
                    headings.append((level, inner))
                    if title == nil { title = inner }
                    i = html[end.upperBound...].firstIndex(of: ">").map { html.index(after: $0) } ?? html.endIndex
                    continue
                }
                if name == "title", let end = html.range(of: "</title", options: .caseInsensitive, range: close..<html.endIndex) {
                    title = decode(String(html[html.index(after: close)..<end.lowerBound])).trimmingCharacters(in: .whitespacesAndNewlines)
                    i = html[end.upperBound...].firstIndex(of: ">").map { html.index(after: $0) } ?? html.endIndex
                    continue
                }
                if ["p", "br", "div", "li", "tr", "section", "article", "table", "ul", "ol"].contains(name.trimmingCharacters(in: CharacterSet(charactersIn: "/"))) { buf.append("\n") }
                i = html.index(after: close)
            } else {
                buf.append(html[i])
                i = html.index(after: i)
            }
        }
        flush()
        if sections.isEmpty { throw IngestError.empty(path) }
        return Document(id: path, title: title ?? ((path as NSString).lastPathComponent as NSString).deletingPathExtension, source: path, sections: sections)
    }

    static func stripTags(_ s: String) -> String { s.replacingOccurrences(of: "<[^>]*>", with: "", options: .regularExpression) }

    static func decode(_ s: String) -> String {
        var t = s
        for (k, v) in [("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&#39;", "'"), ("&apos;", "'")] {
            t = t.replacingOccurrences(of: k, with: v)
        }
        t = t.replacingOccurrences(of: "&amp;", with: "&")
        return t
    }
}
