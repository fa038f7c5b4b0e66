/// Every module's error type conforms: `message` tells the user what went wrong and what to do next.
public protocol DamdaError: Error, CustomStringConvertible, Sendable {
    var message: String { get }
}

extension DamdaError {
    public var description: String { message }
}
