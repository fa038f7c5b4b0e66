import DamdaCore
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import XCTest

/// A real HTTP/1.1 server on a loopback port that answers by path, as model endpoints do and fail:
/// /ok/… a chat completion (sent chunked), /denied/… 401, /prose/… 200 with prose, /silent/…
/// nothing at all. It records each request's head and body.
final class EndpointDouble: @unchecked Sendable {
    struct Seen: Sendable { var uri: String; var headers: [String: String]; var body: Data }
    private let seen = NIOLockedValueBox<[Seen]>([])
    private var channel: Channel?
    var requests: [Seen] { seen.withLockedValue { $0 } }
    var port: Int { channel!.localAddress!.port! }

    func start() throws {
        let box = seen
        channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap { channel.pipeline.addHandler(Responder(seen: box)) }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    func stop() { try? channel?.close().wait() }

    final class Responder: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let seen: NIOLockedValueBox<[Seen]>
        var head: HTTPRequestHead?
        var body = Data()
        init(seen: NIOLockedValueBox<[Seen]>) { self.seen = seen }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case let .head(h): head = h; body = Data()
            case var .body(buffer): body.append(contentsOf: buffer.readBytes(length: buffer.readableBytes) ?? [])
            case .end:
                guard let head else { return }
                var headers: [String: String] = [:]
                for (name, value) in head.headers { headers[name.lowercased()] = value }
                let request = Seen(uri: head.uri, headers: headers, body: body)
                seen.withLockedValue { $0.append(request) }
                if head.uri.hasPrefix("/silent") { return }
                let (status, text): (HTTPResponseStatus, String) =
                    head.uri.hasPrefix("/ok") ? (.ok, #"{"choices":[{"message":{"role":"assistant","content":"입원 1일당 5만원"}}]}"#)
                    : head.uri.hasPrefix("/denied") ? (.unauthorized, #"{"error":"bad key"}"#)
                    : (.ok, "I am not JSON")
                // No Content-Length: the reply goes chunked, as streaming servers send it.
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status))), promise: nil)
                var buffer = context.channel.allocator.buffer(capacity: text.utf8.count)
                buffer.writeString(text)
                context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

final class ChatEndpointTests: XCTestCase {
    var server: EndpointDouble!

    override func setUpWithError() throws {
        server = EndpointDouble()
        try server.start()
    }

    override func tearDown() { server.stop() }

    func endpoint(_ path: String, key: String? = nil, timeout: TimeInterval = 10) -> ChatEndpoint {
        var e = ChatEndpoint(url: URL(string: "http://127.0.0.1:\(server.port)/\(path)")!, model: "teacher", key: key)
        e.timeout = timeout
        return e
    }

    /// The request is an OpenAI chat completion with the key as a bearer token; the chunked reply's text comes back.
    func testACompletionIsPostedAndItsTextReturned() async throws {
        let text = try await endpoint("ok", key: "sekrit").complete(system: "시스템", user: "질문", maxTokens: 7, temperature: 0.5)
        XCTAssertEqual(text, "입원 1일당 5만원")
        let request = try XCTUnwrap(server.requests.first)
        XCTAssertEqual(request.uri, "/ok/v1/chat/completions")
        XCTAssertEqual(request.headers["authorization"], "Bearer sekrit")
        XCTAssertEqual(request.headers["content-type"], "application/json")
        XCTAssertEqual(request.headers["host"], "127.0.0.1:\(server.port)")
        let body = try XCTUnwrap(JSONSerialization.jsonObject(with: request.body) as? [String: Any])
        XCTAssertEqual(body["model"] as? String, "teacher")
        XCTAssertEqual(body["max_tokens"] as? Int, 7)
        XCTAssertEqual(body["temperature"] as? Double, 0.5)
        let messages = try XCTUnwrap(body["messages"] as? [[String: String]])
        XCTAssertEqual(messages, [["role": "system", "content": "시스템"], ["role": "user", "content": "질문"]])
    }

    /// An HTTP error, a reply that is not a completion, a server that never answers and a closed
    /// port each give their own error, promptly.
    func testFailuresAreTold() async throws {
        do {
            _ = try await endpoint("denied").complete(system: "s", user: "u", maxTokens: 1)
            XCTFail("a 401 was taken as an answer")
        } catch let ChatEndpoint.Failure.http(status, body) {
            XCTAssertEqual(status, 401)
            XCTAssertTrue(body.contains("bad key"), body)
        }
        do {
            _ = try await endpoint("prose").complete(system: "s", user: "u", maxTokens: 1)
            XCTFail("prose was taken as a completion")
        } catch let ChatEndpoint.Failure.malformed(reply) {
            XCTAssertEqual(reply, "I am not JSON")
        }
        let started = Date()
        do {
            _ = try await endpoint("silent", timeout: 0.5).complete(system: "s", user: "u", maxTokens: 1)
            XCTFail("a silent server answered")
        } catch let ChatEndpoint.Failure.timeout(seconds) {
            XCTAssertEqual(seconds, 0.5)
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "the deadline ends the request")
        let port = server.port
        server.stop()
        do {
            var closed = ChatEndpoint(url: URL(string: "http://127.0.0.1:\(port)")!, model: "m")
            closed.timeout = 5
            _ = try await closed.complete(system: "s", user: "u", maxTokens: 1)
            XCTFail("a closed port answered")
        } catch let ChatEndpoint.Failure.transport(why) {
            XCTAssertFalse(why.isEmpty)
        }
    }
}
