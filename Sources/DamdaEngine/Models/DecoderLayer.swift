import DamdaCore
import DamdaModelIO

/// The seven projections of a decoder layer. Gemma 3 and Llama / Qwen 2 name them alike in GGUF
/// (`blk.N.attn_q.weight` …), so both load them here, checked against the model's LoRA geometry.
package struct LayerProjections: Sendable {
    package let q, k, v, o, gate, up, down: WeightMatrix

    static let tensorNames: [LoRATarget: String] = [
        .q: "attn_q", .k: "attn_k", .v: "attn_v", .o: "attn_output", .gate: "ffn_gate", .up: "ffn_up", .down: "ffn_down",
    ]

    init(_ file: GGUFFile, layer il: Int, geometry: LoRAGeometry, arena: WeightArena?, relayout: Bool = true) throws {
        func load(_ t: LoRATarget) throws -> WeightMatrix {
            let w = try WeightMatrix(file, "blk.\(il).\(Self.tensorNames[t]!).weight", arena: arena, relayout: relayout)
            let d = geometry.dims[t]!
            try checkMatrix(w, rows: d.output, columns: d.input)
            return w
        }
        q = try load(.q); k = try load(.k); v = try load(.v); o = try load(.o)
        gate = try load(.gate); up = try load(.up); down = try load(.down)
    }

    package func matrix(_ t: LoRATarget) -> WeightMatrix { t.pick(q: q, k: k, v: v, o: o, gate: gate, up: up, down: down) }

    /// The adapter hook every forward pass uses: y_t = x W_tᵀ for each target (one grouped matmul
    /// when several read the same x), plus the adapter's scale · B_t A_t x when one is applied.
    func project(_ targets: [LoRATarget], _ x: UnsafePointer<Float>, tokens: Int, _ ys: [UnsafeMutablePointer<Float>],
                 layer: Int, adapter: LoRAAdapter?, threads: Int, scratch: Scratch) {
        if targets.count == 1 {
            matmul(matrix(targets[0]), x, tokens: tokens, ys[0], threads: threads, scratch: scratch)
        } else {
            matmul(targets.map(matrix), x, tokens: tokens, ys, threads: threads, scratch: scratch)
        }
        guard let adapter else { return }
        for (t, y) in zip(targets, ys) { adapter.apply(layer: layer, t, x: x, tokens: tokens, y: y, threads: threads) }
    }

    /// `project` for one token of each of `count` sequences (a decode batch): the weights are read
    /// once for all of them, and the adapter runs per sequence, as its lone step runs it, so each
    /// row is bit for bit that sequence's lone result.
    func projectBatch(_ targets: [LoRATarget], _ x: UnsafePointer<Float>, count: Int, _ ys: [UnsafeMutablePointer<Float>],
                      layer: Int, adapter: LoRAAdapter?, threads: Int) {
        matvecBatch(targets.map(matrix), x, count: count, ys, threads: threads)
        guard let adapter else { return }
        for (t, y) in zip(targets, ys) {
            let w = matrix(t)
            for b in 0..<count {
                adapter.apply(layer: layer, t, x: x + b * w.columns, tokens: 1, y: y + b * w.rows, threads: threads)
            }
        }
    }
}
