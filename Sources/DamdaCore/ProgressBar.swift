import Foundation

/// A one-line terminal progress bar with rate and ETA, written to standard error so JSON on
/// standard output stays clean. Quiet when standard error is not a terminal unless `force`.
public final class ProgressBar: @unchecked Sendable {
    private let total: Int64
    private let label: String
    private let unit: String
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var done: Int64 = 0
    private let enabled: Bool
    private let lock = NSLock()

    public init(total: Int64, label: String, unit: String = "", force: Bool = false) {
        self.total = max(total, 1)
        self.label = label
        self.unit = unit
        self.enabled = force || isatty(STDERR_FILENO) != 0
    }

    /// Extra text after the ETA (e.g. the current loss).
    public var detail: String {
        get { lock.withLock { _detail } }
        set { lock.withLock { _detail = newValue } }
    }
    private var _detail = ""

    public func advance(by n: Int64) { update(to: lock.withLock { done + n }) }

    public func update(to value: Int64) {
        lock.withLock {
            done = value
            let now = Date()
            guard enabled, now.timeIntervalSince(lastDraw) > 0.1 || value >= total else { return }
            lastDraw = now
            draw(now)
        }
    }

    public func finish() {
        lock.withLock {
            guard enabled else { return }
            draw(Date())
            FileHandle.standardError.write("\n".data(using: .utf8)!)
        }
    }

    private func draw(_ now: Date) {
        let elapsed = max(now.timeIntervalSince(start), 1e-6)
        let fraction = min(Double(done) / Double(total), 1)
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let rate = Double(done) / elapsed
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let line = String(format: "\r%@ %@ %5.1f%% %@ %@/s ETA %@ ", label, bar, fraction * 100,
                          Self.human(Double(done), unit), Self.human(rate, unit), Self.clock(eta)) + _detail
        FileHandle.standardError.write(line.data(using: .utf8)!)
    }

    static func human(_ v: Double, _ unit: String) -> String {
        if unit == "B" {
            let units = ["B", "KB", "MB", "GB"]
            var x = v, i = 0
            while x >= 1000 && i < units.count - 1 { x /= 1000; i += 1 }
            return String(format: "%.1f%@", x, units[i])
        }
        return String(format: "%.1f%@", v, unit.isEmpty ? "" : " " + unit)
    }

    static func clock(_ s: Double) -> String {
        guard s.isFinite else { return "--:--" }
        let t = Int(s.rounded())
        return String(format: "%02d:%02d", t / 60, t % 60)
    }
}
