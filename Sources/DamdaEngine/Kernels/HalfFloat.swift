@inline(__always) func f16(_ p: UnsafeRawPointer, _ offset: Int = 0) -> Float {
    Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}

@inline(__always) func bf16(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

typealias F8 = SIMD8<Float>

@inline(__always) func loadF8(_ p: UnsafePointer<Float>) -> F8 {
    UnsafeRawPointer(p).loadUnaligned(as: F8.self)
}

@inline(__always) func storeF8(_ v: F8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self)
}

/// Plain fp32 dot product with four independent accumulators (hides FMA latency).
@inline(__always) public func dotF32(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var s0 = F8(), s1 = F8(), s2 = F8(), s3 = F8()
    var i = 0
    while i + 32 <= n {
        s0 = s0.addingProduct(loadF8(a + i), loadF8(b + i))
        s1 = s1.addingProduct(loadF8(a + i + 8), loadF8(b + i + 8))
        s2 = s2.addingProduct(loadF8(a + i + 16), loadF8(b + i + 16))
        s3 = s3.addingProduct(loadF8(a + i + 24), loadF8(b + i + 24))
        i += 32
    }
    while i + 8 <= n { s0 = s0.addingProduct(loadF8(a + i), loadF8(b + i)); i += 8 }
    var s = ((s0 + s1) + (s2 + s3)).sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}
