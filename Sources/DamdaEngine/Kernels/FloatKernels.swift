/// F32, F16 and BF16 rows.
enum FloatKernels {
    static func dequantizeF32(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        dst.update(from: src.assumingMemoryBound(to: Float.self), count: n)
    }
    static func dotF32(_ src: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        DamdaEngine.dotF32(src.assumingMemoryBound(to: Float.self), x, n)
    }

    static func dequantizeF16(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i + 8 <= n {
            let h = src.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<Float16>.self)
            storeF8(toFloat(h), dst + i)
            i += 8
        }
        while i < n { dst[i] = f16(src, 2 * i); i += 1 }
    }
    static func dotF16(_ src: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var s0 = F8(), s1 = F8()
        var i = 0
        while i + 16 <= n {
            s0 = s0.addingProduct(toFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<Float16>.self)), loadF8(x + i))
            s1 = s1.addingProduct(toFloat(src.loadUnaligned(fromByteOffset: 2 * i + 16, as: SIMD8<Float16>.self)), loadF8(x + i + 8))
            i += 16
        }
        var s = (s0 + s1).sum()
        while i < n { s += f16(src, 2 * i) * x[i]; i += 1 }
        return s
    }

    static func dequantizeBF16(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i + 8 <= n {
            let h = widen(src.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<UInt16>.self)) &<< 16
            storeF8(unsafeBitCast(h, to: F8.self), dst + i)
            i += 8
        }
        while i < n { dst[i] = bf16(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)); i += 1 }
    }
    static func dotBF16(_ src: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var s0 = F8()
        var i = 0
        while i + 8 <= n {
            let h = widen(src.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<UInt16>.self)) &<< 16
            s0 = s0.addingProduct(unsafeBitCast(h, to: F8.self), loadF8(x + i))
            i += 8
        }
        var s = s0.sum()
        while i < n { s += bf16(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) * x[i]; i += 1 }
        return s
    }
}
