import Foundation

public enum Threads {
    /// Default worker count: every core the process may use.
    public static var available: Int { ProcessInfo.processInfo.activeProcessorCount }
}
