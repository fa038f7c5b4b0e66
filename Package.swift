// swift-tools-version: 6.0
import PackageDescription

// Kernels are written with Swift SIMD types; these flags let LLVM use AVX2/FMA/F16C on x86_64
// (every machine this project runs on has them) and drop bounds checks in the hot loops.
// Numeric modules hand raw pointers to worker threads; Swift 5 mode keeps that free of
// Sendable ceremony, the rest of the package is checked in Swift 6 mode.
let kernelFlags: [SwiftSetting] = [
    .swiftLanguageMode(.v5),
    .unsafeFlags(["-Ounchecked", "-target-cpu", "haswell", "-Xfrontend", "-sil-inline-threshold", "-Xfrontend", "400"],
                 .when(platforms: [.linux], configuration: .release)),
    .unsafeFlags(["-target-cpu", "haswell"], .when(platforms: [.linux], configuration: .debug)),
]

let package = Package(
    name: "Damda",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "damda", targets: ["damda"]),
        .library(name: "DamdaEngine", targets: ["DamdaEngine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/vapor/multipart-kit", from: "4.7.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // Hummingbird's own dependencies, listed because the server imports them (NIOCore buffers, HTTP types).
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // TLS for model endpoints (ChatEndpoint); already in the graph through PostgresNIO.
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // Shared plumbing: progress bars, error protocol, thread pool, the model-endpoint client. Knows nothing of models.
        .target(name: "DamdaCore", dependencies: [
            "CIntrinsics",
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ], swiftSettings: kernelFlags),
        // OpenBLAS (Debian libopenblas-dev) for float matrix-matrix products in prefill.
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS",
                       providers: [.apt(["libopenblas-dev"])]),
        // The prefetch and spin-wait hints Swift lacks (kernels streaming weights, the worker pool).
        .target(name: "CIntrinsics"),
        // GGUF reader/writer, tensor-type registry, default-model fetch.
        .target(name: "DamdaModelIO", dependencies: [
            "DamdaCore",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "ZIPFoundation", package: "ZIPFoundation"),
        ], swiftSettings: kernelFlags),
        // SentencePiece (SPM) and byte-level BPE tokenizers built from GGUF metadata.
        .target(name: "DamdaTokenizer", dependencies: ["DamdaModelIO"]),
        // Kernels, architectures (Gemma 3, Llama/Qwen 2), KV cache, sampling, generation.
        .target(name: "DamdaEngine", dependencies: ["DamdaCore", "DamdaModelIO", "DamdaTokenizer", "COpenBLAS", "CIntrinsics"],
                swiftSettings: kernelFlags),
        // Ingest pipeline, Korean-aware analysis, chunking, BM25, e5 embeddings, vector indexes and
        // HNSW, hybrid search and fusion, query terms and relevance, the SQLite store.
        .target(name: "DamdaRetrieval", dependencies: [
            "DamdaCore", "DamdaEngine",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The PostgreSQL + pgvector implementation of the retrieval store, and the feedback, panel and answer-cache stores on the same database.
        .target(name: "DamdaPostgres", dependencies: [
            "DamdaCore", "DamdaRetrieval", "DamdaAssistant",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The one RAG prompt encoder (serving and training), context packing, training-data formats
        // and rendering, RAG context sampling with unanswerable examples.
        // Korean PII and prompt-injection detectors: formats, checksums, context words, no model.
        .target(name: "DamdaGuardrails", dependencies: ["DamdaCore"]),
        .target(name: "DamdaDatasets", dependencies: ["DamdaCore", "DamdaTokenizer", "DamdaEngine", "DamdaRetrieval", "DamdaGuardrails"]),
        // LoRA/QLoRA fine-tuning: backward pass, AdamW, checkpoints, adapter merge.
        .target(name: "DamdaTraining", dependencies: ["DamdaCore", "DamdaModelIO", "DamdaEngine", "DamdaDatasets"],
                swiftSettings: kernelFlags),
        // The answer pipeline: guard → cache → rewrite → retrieve → build → generate → clean → guard → check → cite → cache; the feedback store.
        .target(name: "DamdaAssistant", dependencies: [
            "DamdaCore", "DamdaModelIO", "DamdaTokenizer", "DamdaEngine", "DamdaRetrieval", "DamdaDatasets", "DamdaGuardrails",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Evaluations: answer metrics (KorQuAD EM/F1), retrieval recall and fusion sweeps, the
        // relevance gate, answer-quality runs over the assistant; Codable reports.
        .target(name: "DamdaEval", dependencies: ["DamdaCore", "DamdaEngine", "DamdaRetrieval", "DamdaAssistant"]),
        // Hummingbird 2 server: OpenAI routes, RAG, documents, feedback, metrics, the web page (embedded).
        .target(name: "DamdaServer", dependencies: [
            "DamdaCore", "DamdaEngine", "DamdaRetrieval", "DamdaDatasets", "DamdaAssistant",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "MultipartKit", package: "multipart-kit"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ], resources: [.embedInCode("Web/index.html"), .embedInCode("Web/panel.html")]),
        .executableTarget(name: "damda", dependencies: [
            "DamdaCore", "DamdaModelIO", "DamdaTokenizer", "DamdaEngine", "DamdaRetrieval", "DamdaPostgres", "DamdaDatasets", "DamdaTraining", "DamdaAssistant", "DamdaEval", "DamdaServer", "DamdaGuardrails",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Helpers shared by the test targets (the default model's path, temporary folders).
        .target(name: "DamdaTestSupport", dependencies: ["DamdaModelIO", "DamdaEngine"], path: "Tests/DamdaTestSupport"),
        .testTarget(name: "DamdaModelIOTests", dependencies: [
            "DamdaModelIO", .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .testTarget(name: "DamdaTokenizerTests", dependencies: ["DamdaTokenizer", "DamdaModelIO", "DamdaTestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "DamdaRetrievalTests", dependencies: ["DamdaCore", "DamdaRetrieval", "DamdaEngine", "DamdaModelIO", "DamdaTokenizer"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DamdaEngineTests", dependencies: ["DamdaEngine", "DamdaCore", "DamdaModelIO", "DamdaTokenizer", "DamdaTestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "DamdaAssistantTests", dependencies: ["DamdaAssistant", "DamdaDatasets", "DamdaEval", "DamdaGuardrails", "DamdaRetrieval", "DamdaEngine", "DamdaModelIO", "DamdaTestSupport"]),
        .testTarget(name: "DamdaDatasetsTests", dependencies: ["DamdaDatasets", "DamdaCore", "DamdaRetrieval", "DamdaEngine", "DamdaTestSupport"]),
        .testTarget(name: "DamdaTrainingTests", dependencies: ["DamdaTraining", "DamdaDatasets", "DamdaEngine", "DamdaModelIO", "DamdaCore", "DamdaTestSupport"]),
        .testTarget(name: "DamdaEvalTests", dependencies: ["DamdaEval", "DamdaCore"]),
        .testTarget(name: "DamdaCoreTests", dependencies: [
            "DamdaCore",
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        .testTarget(name: "DamdaGuardrailsTests", dependencies: ["DamdaGuardrails"]),
        .testTarget(name: "DamdaPostgresTests", dependencies: ["DamdaPostgres", "DamdaAssistant", "DamdaRetrieval", "DamdaModelIO", "DamdaCore", "DamdaTestSupport"]),
        .testTarget(name: "DamdaServerTests", dependencies: ["DamdaServer", "DamdaEngine", "DamdaTestSupport"]),
    ]
)
