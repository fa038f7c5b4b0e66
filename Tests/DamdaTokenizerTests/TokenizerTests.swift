import DamdaTestSupport
import DamdaModelIO
import DamdaTokenizer
import Foundation
import XCTest

struct TokenizerCase: Decodable { let text: String; let ids: [Int32] }
struct TokenizerFixture: Decodable { let model_sha256: String; let cases: [TokenizerCase] }

final class DefaultTokenizerTests: XCTestCase {
    func testIdsMatchReferenceOnFixtureCorpus() throws {
        let url = Bundle.module.url(forResource: "Fixtures/gemma3_tokenizer_cases", withExtension: "json")!
        let fixture = try JSONDecoder().decode(TokenizerFixture.self, from: Data(contentsOf: url))
        XCTAssertGreaterThanOrEqual(fixture.cases.count, 200)
        let tok = try makeTokenizer(try GGUFFile(path: try defaultModelPath()))
        var mismatches = 0
        for c in fixture.cases {
            let ids = tok.encode(c.text)
            if ids != c.ids {
                mismatches += 1
                XCTFail("\(c.text.debugDescription): got \(ids), reference \(c.ids)")
            }
        }
        XCTAssertEqual(mismatches, 0)
    }

    func testDecodeRoundTripsKorean() throws {
        let tok = try makeTokenizer(try GGUFFile(path: try defaultModelPath()))
        for text in ["보험금을 청구하려면 어떻게 하나요?", "Hello, 세계! 🎉 123", "  spaces\tand\nlines  "] {
            let ids = tok.encode(text, addSpecial: false, parseSpecial: false)
            XCTAssertEqual(tok.decode(ids), text)
            var dec = StreamingDecoder()
            var streamed = ""
            for id in ids { streamed += dec.push(id, tokenizer: tok) }
            streamed += dec.flush()
            XCTAssertEqual(streamed, text)
        }
    }
}

final class StreamingDecoderTests: XCTestCase {
    func testHoldsIncompleteUTF8AcrossPieces() {
        var d = StreamingDecoder()
        let bytes = Array("보험🎉a".utf8)  // 3 + 3 + 4 + 1 bytes
        var out: [String] = []
        for b in bytes { out.append(d.push(bytes: [b])) }
        XCTAssertEqual(out.joined(), "보험🎉a")
        XCTAssertEqual(out.filter { !$0.isEmpty }, ["보", "험", "🎉", "a"])
        XCTAssertEqual(d.flush(), "")
    }

    func testFlushReplacesATruncatedSequence() {
        var d = StreamingDecoder()
        XCTAssertEqual(d.push(bytes: [0xEB, 0xB3]), "")
        XCTAssertEqual(d.flush(), "\u{FFFD}")
    }
}

/// Byte-level BPE on a small vocabulary the test writes.
final class BytePairTokenizerTests: XCTestCase {
    func testMergesByRankAndRoundTrips() throws {
        // GPT-2 byte symbols: printable ASCII maps to itself, space to "Ġ".
        var tokens = (33...126).map { String(UnicodeScalar(UInt8($0))) }
        tokens += ["Ġ", "Ġt", "he", "Ġthe", "Ġc", "at", "Ġcat", "<|endoftext|>"]
        var w = GGUFWriter()
        w.set("tokenizer.ggml.model", .string("gpt2"))
        w.set("tokenizer.ggml.pre", .string("llama3"))
        w.set("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) }))
        w.set("tokenizer.ggml.token_type", .array(.int32, tokens.map { .int32($0 == "<|endoftext|>" ? 3 : 1) }))
        w.set("tokenizer.ggml.merges", .array(.string, ["Ġ t", "h e", "Ġt he", "Ġ c", "a t", "Ġc at"].map { .string($0) }))
        w.set("tokenizer.ggml.eos_token_id", .uint32(UInt32(tokens.count - 1)))
        let tok = try makeTokenizer(try GGUFFile(bytes: w.encoded()))
        let ids = tok.encode("the cat<|endoftext|>", addSpecial: true, parseSpecial: true)
        XCTAssertEqual(ids.map { tok.tokenText($0) }, ["t", "he", "Ġcat", "<|endoftext|>"])
        XCTAssertEqual(tok.decode(ids), "the cat")
        XCTAssertTrue(tok.endOfGeneration.contains(Int32(tokens.count - 1)))
    }

    /// Ids by bytes: canonically equivalent but distinct tokens stay apart, a later duplicate
    /// wins, and a slice of a longer buffer finds its token without a copy.
    func testTokenTableKeysByBytes() {
        let tokens = [";", "\u{037E}", "보험", "", "보험", "e\u{301}", "\u{E9}"] + (0..<5_000).map { "t\($0)" }
        let table = TokenTable(tokens)
        XCTAssertEqual(table.id(of: ";".utf8), 0)
        XCTAssertEqual(table.id(of: "\u{037E}".utf8), 1)
        XCTAssertEqual(table.id(of: "보험".utf8), 4)
        XCTAssertEqual(table.id(of: "".utf8), 3)
        XCTAssertEqual(table.id(of: "e\u{301}".utf8), 5)
        XCTAssertEqual(table.id(of: "\u{E9}".utf8), 6)
        XCTAssertEqual(table.id(of: "t4999".utf8), Int32(tokens.count - 1))
        XCTAssertNil(table.id(of: "보".utf8))
        XCTAssertNil(table.id(of: "t5000".utf8))
        let text = Array("가입 보험금".utf8)
        XCTAssertEqual(table.id(of: text[7..<13]), 4)
    }
}
