import Foundation

/// Field names for JSONL/CSV records.
public struct RecordFields: Sendable {
    public var text = "text"
    public var title = "title"
    public var id = "id"
    public init(text: String = "text", title: String = "title", id: String = "id") { self.text = text; self.title = title; self.id = id }
}

/// What loading a set of paths produced: documents, plus per-file (or per-line) problems.
public struct LoadResult: Sendable {
    public var documents: [Document] = []
    public var problems: [IngestError] = []
    /// Every source path seen (for pruning documents whose files disappeared).
    public var sources: Set<String> = []
    public init(documents: [Document] = [], problems: [IngestError] = []) {
        self.documents = documents; self.problems = problems; sources = Set(documents.map(\.source))
    }
}

/// Reads files and folders (recursively) into documents; a bad file is reported and skipped.
public struct DocumentLoader: Sendable {
    public var fields = RecordFields()
    public init(fields: RecordFields = RecordFields()) { self.fields = fields }

    public static let extensions: Set<String> = ["txt", "md", "markdown", "html", "htm", "pdf", "jsonl", "csv"]

    public func load(_ paths: [String]) -> LoadResult {
        var result = LoadResult()
        let fm = FileManager.default
        for path in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
                result.problems.append(.unreadable(path, reason: "no such file or folder")); continue
            }
            if isDir.boolValue {
                let files = (fm.enumerator(atPath: path)?.compactMap { $0 as? String } ?? []).sorted()
                for f in files where Self.extensions.contains((f as NSString).pathExtension.lowercased()) {
                    let full = (path as NSString).appendingPathComponent(f)
                    var d: ObjCBool = false
                    if fm.fileExists(atPath: full, isDirectory: &d), !d.boolValue { loadFile(full, into: &result) }
                }
            } else {
                loadFile(path, into: &result)
            }
        }
        return result
    }

    func loadFile(_ path: String, into result: inout LoadResult) {
        let ext = (path as NSString).pathExtension.lowercased()
        result.sources.insert(path)
        do {
            switch ext {
            case "txt": result.documents.append(try plain(path))
            case "md", "markdown": result.documents.append(try markdown(path))
            case "html", "htm": result.documents.append(try HTMLText.document(path: path, html: try readText(path)))
            case "pdf": result.documents.append(try pdf(path))
            case "jsonl": try jsonl(path, into: &result)
            case "csv": try csv(path, into: &result)
            default: throw IngestError.unsupported(path)
            }
        } catch let e as IngestError {
            result.problems.append(e)
        } catch {
            result.problems.append(.unreadable(path, reason: "\(error)"))
        }
    }

    func readText(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw IngestError.unreadable(path, reason: "permission or I/O error") }
        if data.isEmpty { throw IngestError.empty(path) }
        // NUL bytes or invalid UTF-8 mean this is not a text file.
        if data.prefix(8192).contains(0) { throw IngestError.binary(path) }
        guard let s = String(data: data, encoding: .utf8) else { throw IngestError.binary(path) }
        if s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw IngestError.empty(path) }
        return s
    }

    func title(_ path: String) -> String { ((path as NSString).lastPathComponent as NSString).deletingPathExtension }

    func plain(_ path: String) throws -> Document {
        Document(id: path, title: title(path), source: path, sections: [.init(text: try readText(path))])
    }

    /// Markdown: `#` headings open sections; the heading path is kept with each section.
    func markdown(_ path: String) throws -> Document {
        let text = try readText(path)
        var sections: [Document.Section] = []
        var headings: [(Int, String)] = []
        var buf: [String] = []
        var docTitle: String?
        func flush() {
            let t = buf.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
            if !t.isEmpty { sections.append(.init(text: t, headingPath: headings.map(\.1))) }
            buf = []
        }
        for line in text.components(separatedBy: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            let level = trimmed.prefix(while: { $0 == "#" }).count
            if level > 0 && level <= 6 && trimmed.dropFirst(level).first == " " {
                flush()
                let h = trimmed.dropFirst(level).trimmingCharacters(in: .whitespaces)
                headings.removeAll { $0.0 >= level }
                headings.append((level, h))
                if docTitle == nil && level == 1 { docTitle = h }
            } else {
                buf.append(line)
            }
        }
        flush()
        if sections.isEmpty { throw IngestError.empty(path) }
        return Document(id: path, title: docTitle ?? title(path), source: path, sections: sections)
    }

    /// PDF: text per page via poppler's `pdftotext` (pages are separated by form feeds).
    func pdf(_ path: String) throws -> Document {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["pdftotext", "-layout", "-enc", "UTF-8", path, "-"]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        do { try p.run() } catch { throw IngestError.toolMissing(path, tool: "pdftotext") }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        if p.terminationStatus == 127 { throw IngestError.toolMissing(path, tool: "pdftotext") }
        guard p.terminationStatus == 0 else { throw IngestError.unreadable(path, reason: "pdftotext: \(errText.prefix(200))") }
        let pages = String(decoding: data, as: UTF8.self).components(separatedBy: "\u{0C}")
        let sections = pages.enumerated().compactMap { i, t -> Document.Section? in
            let clean = t.trimmingCharacters(in: .whitespacesAndNewlines)
            return clean.isEmpty ? nil : .init(text: clean, page: i + 1)
        }
        if sections.isEmpty { throw IngestError.empty(path) }
        return Document(id: path, title: title(path), source: path, sections: sections)
    }

    func record(_ obj: [String: Any], path: String, line: Int) throws -> Document {
        guard let text = obj[fields.text] as? String, !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw IngestError.badLine(path, line: line, reason: "no non-empty '\(fields.text)' field")
        }
        let id = (obj[fields.id] as? String) ?? (obj[fields.id] as? Int).map(String.init) ?? "\(path):\(line)"
        let title = (obj[fields.title] as? String) ?? id
        var tags: [String] = []
        if let t = obj["tags"] as? [String] { tags = t } else if let t = obj["topic"] as? String { tags = [t] }
        return Document(id: id, title: title, source: path, sections: [.init(text: text)], tags: tags)
    }

    func jsonl(_ path: String, into result: inout LoadResult) throws {
        let text = try readText(path)
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let l = line.trimmingCharacters(in: .whitespaces)
            if l.isEmpty { continue }
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(l.utf8))) as? [String: Any] else {
                result.problems.append(.badLine(path, line: i + 1, reason: "not a JSON object")); continue
            }
            do { result.documents.append(try record(obj, path: path, line: i + 1)) } catch let e as IngestError { result.problems.append(e) }
        }
    }

    func csv(_ path: String, into result: inout LoadResult) throws {
        let rows = CSVParser.parse(try readText(path))
        guard let header = rows.first else { throw IngestError.empty(path) }
        for (i, row) in rows.dropFirst().enumerated() where !(row.count == 1 && row[0].isEmpty) {
            guard row.count == header.count else {
                result.problems.append(.badLine(path, line: i + 2, reason: "\(row.count) fields, header has \(header.count)")); continue
            }
            var obj: [String: Any] = [:]
            for (k, v) in zip(header, row) { obj[k] = v }
            do { result.documents.append(try record(obj, path: path, line: i + 2)) } catch let e as IngestError { result.problems.append(e) }
        }
    }
}

/// RFC 4180 CSV: quoted fields may hold commas, quotes ("") and newlines.
enum CSVParser {
    static func parse(_ text: String) -> [[String]] {
        var rows: [[String]] = [], row: [String] = [], field = ""
        var inQuotes = false
        var it = Array(text.replacingOccurrences(of: "\r\n", with: "\n")).makeIterator()
        var pending: Character? = nil
        while let c = pending ?? it.next() {
            pending = nil
            if inQuotes {
                if c == "\"" {
                    if let n = it.next() { if n == "\"" { field.append("\"") } else { inQuotes = false; pending = n } } else { inQuotes = false }
                } else { field.append(c) }
            } else if c == "\"" { inQuotes = true }
            else if c == "," { row.append(field); field = "" }
            else if c == "\n" { row.append(field); rows.append(row); row = []; field = "" }
            else { field.append(c) }
        }
        if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
        return rows
    }
}
