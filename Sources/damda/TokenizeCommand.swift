import ArgumentParser
import DamdaModelIO
import DamdaTokenizer
import Foundation

struct TokenizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenize", abstract: "Print the token ids of TEXT as a JSON array.")
    @OptionGroup var options: ModelOptions
    @Flag(help: "Do not add BOS/EOS.") var noSpecial = false
    @Flag(help: "Treat control-token text such as <start_of_turn> as plain text.") var noParseSpecial = false
    @Flag(help: "Read one text per line from standard input and print one JSON array per line.") var lines = false
    @Argument(help: "Text to tokenize.") var text: String?

    func run() async throws {
        try await failing {
            let file = try GGUFFile(path: try options.resolvedModel())
            let tok = try makeTokenizer(file)
            func encode(_ s: String) -> String {
                let ids = tok.encode(s, addSpecial: !noSpecial, parseSpecial: !noParseSpecial)
                return "[" + ids.map(String.init).joined(separator: ",") + "]"
            }
            if lines {
                while let line = readLine(strippingNewline: true) {
                    // Lines are JSON strings so texts may hold newlines.
                    let s = (try? JSONDecoder().decode(String.self, from: Data(line.utf8))) ?? line
                    print(encode(s))
                }
            } else {
                guard let text else { throw ValidationError("give TEXT or --lines") }
                print(encode(text))
            }
        }
    }
}
