import DamdaCore
import DamdaEngine
import Foundation

/// Hierarchical navigable small-world graph (Malkov & Yashunin 2016) over unit vectors, scored by
/// inner product. Exact search costs O(n·d) per query; HNSW visits a few thousand vectors instead.
/// Layer 0 keeps up to 2·M neighbours, upper layers M; a node's top layer is ⌊−ln(U)·mL⌋ with
/// mL = 1/ln(M). Neighbours are chosen with the paper's heuristic (Algorithm 4), which keeps the
/// graph navigable on clustered data.
public final class HNSWIndex: @unchecked Sendable {
    public struct Parameters: Sendable, Equatable, Codable {
        public var m = 16
        public var efConstruction = 200
        public var efSearch = 64
        public var seed: UInt64 = 42
        public init(m: Int = 16, efConstruction: Int = 200, efSearch: Int = 64, seed: UInt64 = 42) {
            self.m = m; self.efConstruction = efConstruction; self.efSearch = efSearch; self.seed = seed
        }
    }

    public let dimension: Int
    public var parameters: Parameters
    let vectors: [Float]
    public var count: Int { dimension == 0 ? 0 : vectors.count / dimension }
    /// neighbours[level][node]: adjacency lists; a node appears on levels 0...levels[node].
    var neighbours: [[[Int32]]] = []
    var levels: [Int8] = []
    var entryPoint: Int32 = -1
    var maxLevel = -1

    /// Builds the graph over `vectors` ([count × dimension], unit rows).
    public init(dimension: Int, vectors: [Float], parameters: Parameters = Parameters(), progress: ((Int) -> Void)? = nil) {
        self.dimension = dimension
        self.vectors = vectors
        self.parameters = parameters
        var rng = SplitMix64(seed: parameters.seed)
        let mL = 1 / log(Double(max(parameters.m, 2)))
        levels = (0..<count).map { _ in Int8(min(Int(-log(max(rng.nextUnit(), 1e-12)) * mL), 15)) }
        let top = Int(levels.max() ?? -1)
        neighbours = (0...max(top, 0)).map { _ in [[Int32]](repeating: [], count: count) }
        var visited = VisitedSet(count: count)
        for i in 0..<count {
            insert(Int32(i), visited: &visited)
            if i % 1024 == 0 { progress?(i) }
        }
        progress?(count)
    }

    /// Restores a graph saved by `serialized()`; nil when the bytes do not fit these vectors.
    public init?(serialized data: Data, dimension: Int, vectors: [Float]) {
        self.dimension = dimension
        self.vectors = vectors
        var r = ByteReader(data)
        guard r.u32() == 0x484E_5357, r.u32() == 1,                       // "HNSW", version 1
              let n = r.u32(), Int(n) == vectors.count / max(dimension, 1), let d = r.u32(), Int(d) == dimension,
              let m = r.u32(), let efc = r.u32(), let efs = r.u32(), let seed = r.u64(),
              let ep = r.i32(), let ml = r.i32(), ml < 16 else { return nil }
        parameters = Parameters(m: Int(m), efConstruction: Int(efc), efSearch: Int(efs), seed: seed)
        entryPoint = ep
        maxLevel = Int(ml)
        guard let lv = r.bytes(Int(n)) else { return nil }
        levels = lv.map { Int8(bitPattern: $0) }
        guard levels.allSatisfy({ $0 >= 0 && Int($0) <= max(maxLevel, 0) }) else { return nil }
        neighbours = (0...max(maxLevel, 0)).map { _ in [[Int32]](repeating: [], count: Int(n)) }
        for node in 0..<Int(n) {
            for level in 0...Int(levels[node]) {
                guard let c = r.u32(), c <= 4096, let list = r.i32s(Int(c)) else { return nil }
                guard list.allSatisfy({ $0 >= 0 && $0 < Int32(n) }) else { return nil }
                neighbours[level][node] = list
            }
        }
        guard r.atEnd, (n == 0) == (entryPoint < 0) else { return nil }
    }

    public func serialized() -> Data {
        var w = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { w.append(contentsOf: $0) } }
        func i32(_ v: Int32) { withUnsafeBytes(of: v.littleEndian) { w.append(contentsOf: $0) } }
        u32(0x484E_5357); u32(1); u32(UInt32(count)); u32(UInt32(dimension))
        u32(UInt32(parameters.m)); u32(UInt32(parameters.efConstruction)); u32(UInt32(parameters.efSearch))
        withUnsafeBytes(of: parameters.seed.littleEndian) { w.append(contentsOf: $0) }
        i32(entryPoint); i32(Int32(maxLevel))
        w.append(contentsOf: levels.map { UInt8(bitPattern: $0) })
        for node in 0..<count {
            for level in 0...Int(levels[node]) {
                let list = neighbours[level][node]
                u32(UInt32(list.count))
                for x in list { i32(x) }
            }
        }
        return w
    }

    @inline(__always) func similarity(_ a: Int32, _ q: UnsafePointer<Float>) -> Float {
        vectors.withUnsafeBufferPointer { dotF32($0.baseAddress! + Int(a) * dimension, q, dimension) }
    }

    func capacity(_ level: Int) -> Int { level == 0 ? 2 * parameters.m : parameters.m }

    private func insert(_ node: Int32, visited: inout VisitedSet) {
        let level = Int(levels[Int(node)])
        guard entryPoint >= 0 else { entryPoint = node; maxLevel = level; return }
        vectors.withUnsafeBufferPointer { vp in
            let q = vp.baseAddress! + Int(node) * dimension
            var ep = entryPoint
            var epSim = similarity(ep, q)
            if maxLevel > level {
                for l in stride(from: maxLevel, to: level, by: -1) { greedy(&ep, &epSim, q, level: l) }
            }
            var entries = [(ep, epSim)]
            for l in stride(from: min(level, maxLevel), through: 0, by: -1) {
                let candidates = searchLayer(q, entries: entries, ef: parameters.efConstruction, level: l, visited: &visited)
                let chosen = selectNeighbours(candidates, max: parameters.m)
                neighbours[l][Int(node)] = chosen.map(\.0)
                for (other, _) in chosen { link(other, to: node, level: l) }
                entries = candidates
            }
        }
        if level > maxLevel { maxLevel = level; entryPoint = node }
    }

    /// Adds `node` to `other`'s list, re-selecting when the list is over capacity.
    private func link(_ other: Int32, to node: Int32, level: Int) {
        var list = neighbours[level][Int(other)]
        list.append(node)
        if list.count > capacity(level) {
            let base = vectors.withUnsafeBufferPointer { UnsafePointer($0.baseAddress! + Int(other) * dimension) }
            let scored = list.map { ($0, similarity($0, base)) }.sorted { $0.1 > $1.1 }
            list = selectNeighbours(scored, max: capacity(level)).map(\.0)
        }
        neighbours[level][Int(other)] = list
    }

    /// Algorithm 4: keep a candidate only if it is closer to the base than to every kept one;
    /// fill up with the best of the rest (keepPrunedConnections).
    private func selectNeighbours(_ sorted: [(Int32, Float)], max m: Int) -> [(Int32, Float)] {
        var kept: [(Int32, Float)] = []
        var pruned: [(Int32, Float)] = []
        vectors.withUnsafeBufferPointer { vp in
            for c in sorted {
                if kept.count >= m { break }
                let cv = vp.baseAddress! + Int(c.0) * dimension
                if kept.allSatisfy({ similarity($0.0, cv) < c.1 }) { kept.append(c) } else { pruned.append(c) }
            }
        }
        for p in pruned where kept.count < m { kept.append(p) }
        return kept
    }

    private func greedy(_ ep: inout Int32, _ epSim: inout Float, _ q: UnsafePointer<Float>, level: Int) {
        var improved = true
        while improved {
            improved = false
            for n in neighbours[level][Int(ep)] {
                let s = similarity(n, q)
                if s > epSim { epSim = s; ep = n; improved = true }
            }
        }
    }

    /// Algorithm 2: best-first search keeping the `ef` most similar nodes found; sorted best first.
    private func searchLayer(_ q: UnsafePointer<Float>, entries: [(Int32, Float)], ef: Int, level: Int,
                             visited: inout VisitedSet) -> [(Int32, Float)] {
        visited.reset()
        var candidates = Heap<Float>(maxFirst: true)     // to expand: most similar first
        var results = Heap<Float>(maxFirst: false)       // kept: least similar on top
        for (e, s) in entries {
            guard visited.insert(e) else { continue }
            candidates.push(e, s); results.push(e, s)
        }
        while results.count > ef { _ = results.pop() }
        while let (c, cs) = candidates.pop() {
            if results.count >= ef, let worst = results.top, cs < worst.1 { break }
            for n in neighbours[level][Int(c)] where visited.insert(n) {
                let s = similarity(n, q)
                if results.count < ef || s > results.top!.1 {
                    candidates.push(n, s); results.push(n, s)
                    if results.count > ef { _ = results.pop() }
                }
            }
        }
        var out: [(Int32, Float)] = []
        while let r = results.pop() { out.append(r) }
        return out.reversed()
    }

    /// The `k` most similar rows (approximately), best first. With a filter the beam widens, and
    /// a filter that passes few rows falls back to scoring those rows exactly.
    public func search(_ query: [Float], k: Int, efSearch: Int? = nil, allowed: ((Int) -> Bool)? = nil) -> [(index: Int, score: Float)] {
        guard query.count == dimension, entryPoint >= 0, k > 0 else { return [] }
        var visited = VisitedSet(count: count)
        return query.withUnsafeBufferPointer { qp -> [(index: Int, score: Float)] in
            let q = qp.baseAddress!
            var ep = entryPoint
            var epSim = similarity(ep, q)
            if maxLevel > 0 { for l in stride(from: maxLevel, to: 0, by: -1) { greedy(&ep, &epSim, q, level: l) } }
            let ef = max(efSearch ?? parameters.efSearch, k) * (allowed == nil ? 1 : 4)
            var found = searchLayer(q, entries: [(ep, epSim)], ef: ef, level: 0, visited: &visited)
            if let allowed {
                found = found.filter { allowed(Int($0.0)) }
                if found.count < k {
                    // A selective filter: score the rows it passes exactly.
                    var all: [(Int32, Float)] = []
                    for i in 0..<count where allowed(i) { all.append((Int32(i), similarity(Int32(i), q))) }
                    found = all.partialTop(k) { $0.1 > $1.1 }
                }
            }
            return found.prefix(k).map { (index: Int($0.0), score: $0.1) }
        }
    }
}

/// A generation-stamped visited set: reset is O(1).
struct VisitedSet {
    var marks: [UInt32]
    var stamp: UInt32 = 1
    init(count: Int) { marks = [UInt32](repeating: 0, count: count) }
    mutating func reset() {
        stamp &+= 1
        if stamp == 0 { marks = [UInt32](repeating: 0, count: marks.count); stamp = 1 }
    }
    /// True when newly visited.
    mutating func insert(_ i: Int32) -> Bool {
        if marks[Int(i)] == stamp { return false }
        marks[Int(i)] = stamp
        return true
    }
}

/// A binary heap of (node, score): max-heap or min-heap by score.
struct Heap<S: Comparable> {
    var items: [(Int32, S)] = []
    let maxFirst: Bool
    init(maxFirst: Bool) { self.maxFirst = maxFirst }
    var count: Int { items.count }
    var top: (Int32, S)? { items.first }
    @inline(__always) func before(_ a: S, _ b: S) -> Bool { maxFirst ? a > b : a < b }
    mutating func push(_ n: Int32, _ s: S) {
        items.append((n, s))
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard before(items[i].1, items[p].1) else { break }
            items.swapAt(i, p); i = p
        }
    }
    mutating func pop() -> (Int32, S)? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let out = items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var best = i
            if l < items.count, before(items[l].1, items[best].1) { best = l }
            if r < items.count, before(items[r].1, items[best].1) { best = r }
            if best == i { break }
            items.swapAt(i, best); i = best
        }
        return out
    }
}

/// Little-endian reads that return nil past the end (a truncated file is not a crash).
struct ByteReader {
    let data: Data
    var at = 0
    init(_ d: Data) { data = d }
    var atEnd: Bool { at == data.count }
    mutating func take(_ n: Int) -> Data? {
        guard n >= 0, at + n <= data.count else { return nil }
        defer { at += n }
        return data.subdata(in: (data.startIndex + at)..<(data.startIndex + at + n))
    }
    mutating func u32() -> UInt32? { take(4).map { $0.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) } } }
    mutating func u64() -> UInt64? { take(8).map { $0.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) } } }
    mutating func i32() -> Int32? { u32().map { Int32(bitPattern: $0) } }
    mutating func bytes(_ n: Int) -> [UInt8]? { take(n).map { Array($0) } }
    mutating func i32s(_ n: Int) -> [Int32]? {
        take(n * 4).map { d in d.withUnsafeBytes { raw in (0..<n).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) } } }
    }
}
