extension Duration {
    /// This duration in seconds, for rates (tokens per second, GB/s).
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
    /// This duration in milliseconds, for latencies.
    public var milliseconds: Double { Double(components.seconds) * 1000 + Double(components.attoseconds) * 1e-15 }
}
