import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One HTTP/1.1 POST over SwiftNIO (plain or TLS), for the model endpoints `ChatEndpoint` talks to.
///
/// Why not URLSession: on Linux it lives in FoundationNetworking, which loads libcurl and its TLS,
/// LDAP and Kerberos libraries into every process of the binary at start, about 6 MB of resident
/// memory that `damda serve` and `damda ask` never use. NIO is in the binary already (the server).
/// One connection per request (`Connection: close`); no redirects or proxies, which an
/// OpenAI-compatible endpoint on the company's network does not need.
enum HTTPPost {
    struct Reply: Sendable {
        var status: Int
        var body: Data
    }

    enum Failure: Error, CustomStringConvertible {
        case badURL(String)
        case timedOut
        case closedEarly
        var description: String {
            switch self {
            case let .badURL(url): "not an http(s) URL with a host: \(url)"
            case .timedOut: "timed out"
            case .closedEarly: "the connection closed before the reply ended"
            }
        }
    }

    /// POSTs `body` to `url` with `headers` (Host, Content-Length and Connection are added), and
    /// returns the status and body once the reply has ended. Throws `Failure.timedOut` when
    /// connecting, sending and reading take longer than `timeout` in all.
    static func send(_ url: URL, headers: [(String, String)], body: Data, timeout: TimeInterval) async throws -> Reply {
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty else { throw Failure.badURL(url.absoluteString) }
        let tls = scheme == "https"
        let port = url.port ?? (tls ? 443 : 80)
        // The target as the URL spells it (still percent-encoded), and an IPv6 host in brackets.
        let parts = URLComponents(url: url, resolvingAgainstBaseURL: false)
        var path = parts?.percentEncodedPath ?? ""
        if path.isEmpty { path = "/" }
        if let query = parts?.percentEncodedQuery { path += "?" + query }
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
        let hostName = host.contains(":") ? "[\(host)]" : host
        head.headers.add(name: "Host", value: url.port == nil ? hostName : "\(hostName):\(port)")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        head.headers.add(name: "Content-Length", value: String(body.count))
        head.headers.add(name: "Connection", value: "close")
        let request = head
        // Within a day: a deadline beyond UInt64's nanoseconds would trap when converted.
        let seconds = min(max(timeout, 0.001), 86_400)
        return try await withThrowingTaskGroup(of: Reply?.self) { group in
            group.addTask { try await exchange(host: host, port: port, tls: tls, head: request, body: body, timeout: seconds) }
            group.addTask {
                try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let reply = first else { throw Failure.timedOut }
            return reply
        }
    }

    /// One TLS context for the process (it reads the trust roots once, not per request): the
    /// system's roots, or the PEM bundle `SSL_CERT_FILE` names (OpenSSL's and curl's variable), so
    /// an endpoint certified by the company's own CA can be trusted without installing that CA
    /// system-wide.
    private static let tlsContext = Result<NIOSSLContext, Error> {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let bundle = ProcessInfo.processInfo.environment["SSL_CERT_FILE"], !bundle.isEmpty { configuration.trustRoots = .file(bundle) }
        return try NIOSSLContext(configuration: configuration)
    }

    private static func exchange(host: String, port: Int, tls: Bool, head: HTTPRequestHead, body: Data,
                                 timeout: TimeInterval) async throws -> Reply {
        let sslContext = tls ? try tlsContext.get() : nil
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(Int64(timeout * 1000)))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        // SNI and the certificate's name check take a host name; an address is checked as one.
                        let serverName = (try? SocketAddress(ipAddress: host, port: port)) == nil ? host : nil
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(.head(head))
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body))))
            try await outbound.write(.end(nil))
            var status = 0
            var reply = Data()
            for try await part in inbound {
                switch part {
                case let .head(response): status = Int(response.status.code)
                case var .body(buffer): reply.append(contentsOf: buffer.readBytes(length: buffer.readableBytes) ?? [])
                case .end: return Reply(status: status, body: reply)
                }
            }
            throw Failure.closedEarly
        }
    }
}
