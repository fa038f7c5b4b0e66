import DamdaEngine

/// Turns queries and passages into L2-normalized vectors.
public protocol Embedder: Sendable {
    var name: String { get }
    var dimension: Int { get }
    func embed(passages: [String]) -> [[Float]]
    func embed(query: String) -> [Float]
}

/// multilingual-e5-small through the engine; e5 expects "query: " / "passage: " prefixes.
public struct E5Embedder: Embedder, @unchecked Sendable {
    public let encoder: E5Encoder
    public let name = "multilingual-e5-small"
    public var dimension: Int { encoder.dimension }
    public init(path: String, threads: Int, arithmetic: E5Arithmetic = .int8) throws {
        encoder = try E5Encoder(path: path, threads: threads, arithmetic: arithmetic)
    }
    public func embed(passages: [String]) -> [[Float]] { encoder.embed(passages.map { "passage: " + $0 }) }
    public func embed(query: String) -> [Float] { encoder.embed(["query: " + query])[0] }
}
