import Crypto
import DamdaCore
import Foundation

/// The Korean RAG-QA LoRA adapter Damda ships in `models/ko-rag/` for the default model
/// (trained by `scripts/train-default-adapter.sh`; its model card is `models/ko-rag/README.md`).
/// The assistant commands apply it to the default model unless told `--no-adapter` or `--adapter DIR`.
public enum DefaultAdapter {
    public static let folderName = "ko-rag"
    /// `sha256sum` format ("HASH  adapter_model.safetensors"), written by the training script;
    /// `sha256sum -c SHA256SUMS` in the folder checks it by hand too.
    public static let checksumFile = "SHA256SUMS"
    /// The GGUF the adapter was trained on (the default model, checked by `damda model fetch`).
    public static let baseModel = ModelSpec.gemma3_270m

    /// Folders searched, in order: `$DAMDA_DEFAULT_ADAPTER`; `models/ko-rag` of the package the
    /// binary was built in (`…/.build/release/damda`); `share/damda/ko-rag` beside an installed
    /// binary's `bin/`; the source tree this file was compiled from.
    public static func candidates(executable: String = CommandLine.arguments.first ?? "") -> [String] {
        var out: [String] = []
        if let e = ProcessInfo.processInfo.environment["DAMDA_DEFAULT_ADAPTER"], !e.isEmpty { out.append(e) }
        return out + ShippedFiles.candidates(folderName, executable: executable)
    }

    /// The first candidate folder holding the adapter's files.
    public static func locate() throws -> String {
        let list = candidates()
        for d in list where FileManager.default.fileExists(atPath: d + "/adapter_model.safetensors") { return d }
        throw AdapterFileError.notFound(searched: list)
    }

    /// Whether `modelPath` is the default model (its file name and size; `damda model fetch` checked its hash).
    public static func isDefaultModel(_ modelPath: String) -> Bool {
        URL(fileURLWithPath: modelPath).lastPathComponent == baseModel.fileName
    }
}

/// Small artifacts the repository ships under `models/` (the default adapter, the injection
/// classifier): found beside the binary's package, an installed `share/damda/`, or the source tree.
public enum ShippedFiles {
    /// Paths for `models/<relative>`, in the order they are tried.
    public static func candidates(_ relative: String, executable: String = CommandLine.arguments.first ?? "") -> [String] {
        var out: [String] = []
        let exe = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
        // .build/<triple>/release/damda and .build/release/damda (a symlink) both lead to the package root.
        var dir = exe
        for _ in 0..<4 {
            if dir.lastPathComponent.hasPrefix(".build") { out.append(dir.deletingLastPathComponent().appendingPathComponent("models/\(relative)").path); break }
            dir = dir.deletingLastPathComponent()
        }
        out.append(exe.deletingLastPathComponent().appendingPathComponent("share/damda/\(relative)").path)
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        out.append(source.appendingPathComponent("models/\(relative)").path)
        var seen = Set<String>()
        return out.filter { seen.insert($0).inserted }
    }

    /// The first candidate that exists.
    public static func locate(_ relative: String) -> String? {
        candidates(relative).first { FileManager.default.fileExists(atPath: $0) }
    }
}

extension DefaultAdapter {
    /// The SHA-256 the folder's checksum file records for the weights.
    public static func expectedSHA256(directory: String) throws -> String {
        let sums = directory + "/" + checksumFile
        guard let text = try? String(contentsOfFile: sums, encoding: .utf8) else { throw AdapterFileError.noChecksum(path: sums) }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count == 2, parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "*")) == "adapter_model.safetensors",
               parts[0].count == 64 { return parts[0].lowercased() }
        }
        throw AdapterFileError.noChecksum(path: sums)
    }

    /// Checks the weights file against the recorded hash (a damaged, truncated or replaced file fails).
    @discardableResult
    public static func verify(directory: String) throws -> String {
        let expected = try expectedSHA256(directory: directory)
        let path = directory + "/adapter_model.safetensors"
        let got = try ModelFetcher.sha256(of: URL(fileURLWithPath: path))
        guard got == expected else { throw AdapterFileError.checksumMismatch(path: path, expected: expected, got: got) }
        return got
    }
}
