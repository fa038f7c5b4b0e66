import Foundation

/// What the kernels need to know about the processor beyond AVX2/FMA (which the build assumes).
public enum CPUFeatures {
    /// Whether 256-bit vector operations run at full width. AMD's Zen 1 and Zen+ (family 17h,
    /// models below 30h) execute each as two 128-bit halves, so there the matrix-vector kernels
    /// that widen int8 weights do better on 128-bit vectors (LM head: 29 vs 37 ms); Zen 2 and later
    /// and Intel's cores do better on 256 (Zen 3: 16 vs 22 ms in cache). `DAMDA_VECTOR_BITS=128|256`
    /// overrides the choice, for comparing both on one machine.
    public static let fullWidth256: Bool = {
        switch ProcessInfo.processInfo.environment["DAMDA_VECTOR_BITS"] {
        case "128": return false
        case "256": return true
        default: break
        }
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return true }
        return !isZen1(cpuinfo: info)
    }()

    /// AMD family 17h with a model below 30h (Zen, Zen+), read from /proc/cpuinfo's first processor.
    public static func isZen1(cpuinfo: String) -> Bool {
        var vendor = "", family = -1, model = -1
        for line in cpuinfo.split(separator: "\n") {
            if line.isEmpty { break }
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "vendor_id": vendor = parts[1]
            case "cpu family": family = Int(parts[1]) ?? -1
            case "model": model = Int(parts[1]) ?? -1
            default: break
            }
        }
        return vendor == "AuthenticAMD" && family == 0x17 && model >= 0 && model < 0x30
    }
}
