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

// Lane conversions written as explicit build-vectors. LLVM folds them into single vector
// instructions (vpmovsxbd, vpmovzxbd, vcvtdq2ps, vcvtph2ps) every time, whereas the standard
// library's generic SIMD conversion initializers are sometimes left un-inlined as scalar loops,
// which made decode 3× slower depending on unrelated code elsewhere in the module.

@inline(__always) func toFloat(_ v: SIMD8<Int8>) -> F8 {
    F8(Float(v[0]), Float(v[1]), Float(v[2]), Float(v[3]), Float(v[4]), Float(v[5]), Float(v[6]), Float(v[7]))
}

@inline(__always) func toFloat(_ v: SIMD8<Int32>) -> F8 {
    F8(Float(v[0]), Float(v[1]), Float(v[2]), Float(v[3]), Float(v[4]), Float(v[5]), Float(v[6]), Float(v[7]))
}

@inline(__always) func toFloat(_ v: SIMD8<Float16>) -> F8 {
    F8(Float(v[0]), Float(v[1]), Float(v[2]), Float(v[3]), Float(v[4]), Float(v[5]), Float(v[6]), Float(v[7]))
}

@inline(__always) func widen(_ v: SIMD8<UInt8>) -> SIMD8<Int32> {
    SIMD8<Int32>(Int32(v[0]), Int32(v[1]), Int32(v[2]), Int32(v[3]), Int32(v[4]), Int32(v[5]), Int32(v[6]), Int32(v[7]))
}

@inline(__always) func widen(_ v: SIMD8<UInt16>) -> SIMD8<UInt32> {
    SIMD8<UInt32>(UInt32(v[0]), UInt32(v[1]), UInt32(v[2]), UInt32(v[3]), UInt32(v[4]), UInt32(v[5]), UInt32(v[6]), UInt32(v[7]))
}

typealias F4 = SIMD4<Float>

@inline(__always) func loadF4(_ p: UnsafePointer<Float>) -> F4 { UnsafeRawPointer(p).loadUnaligned(as: F4.self) }

@inline(__always) func toFloat(_ v: SIMD4<Int8>) -> F4 { F4(Float(v[0]), Float(v[1]), Float(v[2]), Float(v[3])) }

@inline(__always) func toFloat(_ v: SIMD4<Int32>) -> F4 { F4(Float(v[0]), Float(v[1]), Float(v[2]), Float(v[3])) }

@inline(__always) func widen(_ v: SIMD4<UInt8>) -> SIMD4<Int32> { SIMD4<Int32>(Int32(v[0]), Int32(v[1]), Int32(v[2]), Int32(v[3])) }
