import ArgumentParser
import DamdaCore
import DamdaDatasets
import DamdaRetrieval
import Foundation

struct DataCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Training data from documents: synthesize questions, augment them, clean and split them.",
        subcommands: [Synthesize.self, Augment.self, Clean.self])

    struct Synthesize: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write questions for an index's (or documents') chunks, extractive and Korean or by a teacher model, filtered by span, length, genericity, round trip and duplicates.",
            discussion: "Running it again with the same --out continues after the chunks already done.")
        @Option(help: "Index of the documents to write questions for (with --docs: where they are ingested first).") var index: String?
        @Option(help: "Documents (a file or folder `damda ingest` reads: JSONL, CSV, Markdown, HTML, PDF, text): ingested into --index, or a temporary BM25 index, and only they get questions.")
        var docs: String?
        @Option(help: "Embedding model file for a new index (default: the fetched multilingual-e5-small, if present).") var embeddingModel: String?
        @Flag(help: "Do not embed chunks of --docs (BM25 round trip only).") var noEmbeddings = false
        @Option(help: "The index's documents and chunks are in this PostgreSQL database (as `damda ingest --store`).") var store: String?
        @Option(help: "Worker threads.") var threads: Int = Threads.available
        @Option(help: "Output JSONL: {id, question, answers, doc_id, chunk_id, evidence, generator}.") var out: String
        @Option(help: "Questions per chunk before filtering.") var perChunk = 3
        @Option(help: "Only chunks of the documents named by doc_id in this JSONL (e.g. a training split).") var documentsOf: String?
        @Option(help: "The retriever must find the source chunk within this many hits.") var roundTripK = 5
        @OptionGroup var teacherOptions: TeacherOptions

        func run() async throws {
            try await failing {
                guard index != nil || docs != nil else { throw ValidationError("give --index DIR (an index to write questions for) or --docs PATH") }
                var arguments = ["--index", index ?? FileManager.default.temporaryDirectory.appendingPathComponent("damda-synthesize-\(getpid())").path]
                if let e = embeddingModel { arguments += ["--embedding-model", e] }
                if let store { arguments += ["--store", store] }
                // A temporary index for --docs alone is BM25 only: embedding every chunk would cost more than the synthesis.
                if noEmbeddings || (docs != nil && index == nil) { arguments.append("--no-embeddings") }
                let indexOptions = try IndexOptions.parse(arguments)
                defer { if index == nil { try? FileManager.default.removeItem(atPath: indexOptions.index) } }
                let idx = try indexOptions.open(embedder: try indexOptions.embedder(threads: threads))
                var documents: Set<String>?
                if let docs {
                    let loaded = DocumentLoader().load([docs])
                    for p in loaded.problems { note("warning: \(p)") }
                    guard !loaded.documents.isEmpty else { throw ValidationError("no readable documents in \(docs)") }
                    let ingested = try idx.ingest(loaded)
                    note("ingested \(loaded.documents.count) documents (\(ingested.chunks) chunks written) into \(indexOptions.index)")
                    documents = Set(loaded.documents.map(\.id))
                }
                guard idx.chunkCount > 0 else { throw ValidationError("the index at \(indexOptions.index) is empty: ingest documents first") }
                if let f = documentsOf {
                    let named = Set(try QAExample.read(f).examples.compactMap(\.documentID))
                    documents = documents.map { $0.intersection(named) } ?? named
                }
                let summary = try await synthesizeQuestions(index: idx, out: out, perChunk: perChunk, roundTripK: roundTripK, documents: documents,
                                                            teacher: try teacherOptions.teacher(perChunk: perChunk))
                print(jsonString(summary))
            }
        }
    }

    struct Augment: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add restyled, re-worded, re-spaced and re-formatted variants of each question (answers unchanged).")
        @Option(name: .customLong("in"), help: "Input JSONL with question and answers.") var input: String
        @Option(help: "Output JSONL (originals and variants, each variant tagged with its augmentation).") var out: String
        @Option(help: "At most this many lines per input line (the original included).") var factor = 3
        @Option(help: "Seed for which variants are kept.") var seed: UInt64 = 0

        func run() async throws {
            try await failing {
                let (examples, skipped) = try QAExample.read(input)
                let augmenter = Augmenter(factor: factor, seed: seed)
                var lines: [String] = [], tags: [String: Int] = [:]
                for e in examples {
                    for v in augmenter.augment(e) {
                        lines.append(jsonString(v))
                        if let t = v.augmentation { tags[t, default: 0] += 1 }
                    }
                }
                try (lines.joined(separator: "\n") + "\n").write(toFile: out, atomically: true, encoding: .utf8)
                print(jsonString(AugmentSummary(read: examples.count, skipped: skipped, written: lines.count, byAugmentation: tags)))
            }
        }

        struct AugmentSummary: Encodable {
            var read: Int, skipped: Int, written: Int, byAugmentation: [String: Int]
            enum CodingKeys: String, CodingKey { case read, skipped, written, byAugmentation = "by_augmentation" }
        }
    }

    struct Clean: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Standardize text, remove duplicates and (with --index) off-domain questions; split train/validation/test by source document.")
        @Option(name: .customLong("in"), help: "Input JSONL with question and answers.") var input: String
        @Option(help: "Output JSONL; with --split, OUT's stem gets .train/.val/.test.") var out: String
        @Option(help: "An index of the documents: drop questions whose best chunk fails the assistant's relevance gate.") var index: String?
        @Option(help: "Shares for train,validation,test by source document (e.g. 0.8,0.1,0.1).") var split: String?
        @Option(help: "Worker threads.") var threads: Int = Threads.available
        @Flag(help: "Leave personal data as it is (default: masked as [주민등록번호], [휴대폰번호] …).") var keepPii = false

        func run() async throws {
            try await failing {
                let (examples, skipped) = try QAExample.read(input)
                var cleaner = DataCleaner()
                if keepPii { cleaner.pii = nil }
                if let dir = index {
                    let idx = try SearchIndex(directory: dir, embedder: try embedderIfIndexed(dir, threads: threads))
                    cleaner.index = idx
                    cleaner.mode = idx.hasEmbeddings && idx.embedder != nil ? .hybrid : .bm25
                }
                let (kept, summary) = try cleaner.clean(examples)
                var files: [String: Int] = [:]
                func write(_ rows: [QAExample], _ path: String) throws {
                    try (rows.map { jsonString($0) }.joined(separator: "\n") + (rows.isEmpty ? "" : "\n")).write(toFile: path, atomically: true, encoding: .utf8)
                    files[path] = rows.count
                }
                if let split {
                    let shares = split.split(separator: ",").compactMap { Double($0) }
                    guard shares.count == 3, shares.allSatisfy({ $0 >= 0 }), shares.reduce(0, +) > 0 else {
                        throw ValidationError("--split needs three non-negative shares: train,validation,test")
                    }
                    let stem = URL(fileURLWithPath: out).deletingPathExtension().path
                    for (part, name) in zip(DataCleaner.split(kept, shares: shares), ["train", "val", "test"]) { try write(part, "\(stem).\(name).jsonl") }
                } else {
                    try write(kept, out)
                }
                print(jsonString(CleanSummary(skippedLines: skipped, clean: summary, files: files)))
            }
        }

        struct CleanSummary: Encodable {
            var skippedLines: Int, clean: DataCleaner.Summary, files: [String: Int]
            enum CodingKeys: String, CodingKey { case clean, files, skippedLines = "skipped_lines" }
        }
    }
}


/// A teacher model on the company's network for `damda data synthesize` and `damda tune`.
struct TeacherOptions: ParsableArguments {
    @Option(help: "An OpenAI-compatible chat endpoint (vLLM, llama.cpp, damda serve) that writes the questions instead of the extractive rules.")
    var teacherUrl: String?
    @Option(help: "The teacher's model name.") var teacherModel = "damda"
    @Option(help: "The teacher's API key.") var teacherKey: String?
    @Option(help: "Seconds to wait for one teacher reply.") var teacherTimeout = 120.0
    @Option(help: "Requests per chunk when the reply is not the JSON asked for.") var teacherAttempts = 3
    @Option(help: "At most this many teacher requests per second (0: no limit).") var teacherRps = 0.0

    func teacher(perChunk: Int) throws -> (TeacherSynthesizer, Double)? {
        guard let teacherUrl else { return nil }
        guard let url = URL(string: teacherUrl), url.scheme?.hasPrefix("http") == true else { throw ValidationError("--teacher-url must be an http(s) URL") }
        guard teacherTimeout > 0, teacherAttempts > 0, teacherRps >= 0 else {
            throw ValidationError("--teacher-timeout and --teacher-attempts must be positive, --teacher-rps not negative")
        }
        var endpoint = ChatEndpoint(url: url, model: teacherModel, key: teacherKey)
        endpoint.timeout = teacherTimeout
        var teacher = TeacherSynthesizer(endpoint: endpoint, perChunk: perChunk)
        teacher.attempts = teacherAttempts
        return (teacher, teacherRps)
    }
}

/// `damda data synthesize` into `out`, continuing after the chunks listed in `out`.chunks.
func synthesizeQuestions(index idx: SearchIndex, out: String, perChunk: Int, roundTripK: Int, documents: Set<String>?,
                         teacher: (TeacherSynthesizer, Double)? = nil) async throws -> SynthesisSummary {
    var synthesis = QuestionSynthesis(index: idx, mode: idx.hasEmbeddings && idx.embedder != nil ? .hybrid : .bm25)
    synthesis.teacher = teacher?.0
    synthesis.teacherRequestsPerSecond = teacher?.1 ?? 0
    synthesis.onFirstFailure = { note("teacher: \($0) (further failures are counted in the summary; rerun to ask again)") }
    synthesis.synthesizer.perChunk = perChunk
    synthesis.filters.roundTripK = roundTripK
    synthesis.documents = documents
    let doneFile = out + ".chunks"
    let done = Set(((try? String(contentsOfFile: doneFile, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init))
    // A rerun continues only where a chunk log exists; otherwise it starts over.
    let existing = !done.isEmpty && FileManager.default.fileExists(atPath: out) ? (try? QAExample.read(out))?.examples ?? [] : []
    let previous = existing.map { e in
        SynthesizedQuestion(id: e.id, question: e.question, answers: e.answers, documentID: e.documentID ?? "", chunkID: e.chunkID ?? "",
                            evidence: e.evidence ?? "", generator: e.generator ?? "")
    }
    if done.isEmpty {
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: doneFile, contents: nil)
    } else {
        note("resuming: \(done.count) chunks done, \(existing.count) questions kept")
        // A kill mid-write can leave a torn last line: keep only the whole ones.
        try previous.map { jsonString($0) + "\n" }.joined().write(toFile: out, atomically: true, encoding: .utf8)
    }
    guard let qa = FileHandle(forWritingAtPath: out), let log = FileHandle(forWritingAtPath: doneFile) else {
        throw ValidationError("cannot write \(out)")
    }
    qa.seekToEndOfFile(); log.seekToEndOfFile()
    let summary = try await synthesis.run(existing: previous, doneChunks: done,
                                    emit: { qa.write((jsonString($0) + "\n").data(using: .utf8)!) },
                                    chunkDone: { log.write(($0 + "\n").data(using: .utf8)!) })
    try qa.close(); try log.close()
    return summary
}

private func note(_ s: String) { FileHandle.standardError.write((s + "\n").data(using: .utf8)!) }
