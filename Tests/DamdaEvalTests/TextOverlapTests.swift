import DamdaEval
import Foundation
import XCTest

/// chrF, BLEU and ROUGE-L over Korean characters against sacreBLEU 2.x and rouge-score, run live
/// on the same pairs (scripts/install-deps.sh installs both).
final class TextOverlapTests: XCTestCase {
    static let pairs: [(String, String)] = [
        ("입원 1일당 5만원을 지급합니다.", "5만원"),
        ("1989년 2월 15일", "1989년 2월 15일"),
        ("보험금은 3영업일 이내에 지급됩니다", "3영업일 이내"),
        ("답변을 찾을 수 없습니다.", "180일"),
        ("임수경 의원", "임수경"),
        ("서울특별시 종로구 세종대로", "종로구"),
        ("매월 5일, 15일, 25일 가운데 하나", "5일, 15일, 25일"),
        ("Damda는 RAG와 LoRA를 씁니다", "RAG와 LoRA"),
        ("가", "가나다라마바사"),
        ("통원 1회당 25만원 한도", "25만원"),
    ]

    func reference() throws -> [[Double]] {
        let payload = String(decoding: try JSONSerialization.data(withJSONObject: Self.pairs.map { [$0.0, $0.1] }), as: UTF8.self)
        let script = """
            import json, sys
            from sacrebleu.metrics import BLEU, CHRF
            from rouge_score import rouge_scorer
            class Chars:
                def tokenize(self, text): return [c for c in text if not c.isspace()]
            pairs = json.loads(sys.argv[1])
            chrf, bleu = CHRF(), BLEU(tokenize="char", effective_order=True)
            rouge = rouge_scorer.RougeScorer(["rougeL"], tokenizer=Chars())
            rows = [[chrf.sentence_score(h, [r]).score, bleu.sentence_score(h, [r]).score, rouge.score(r, h)["rougeL"].fmeasure] for h, r in pairs]
            hyps, refs = [h for h, _ in pairs], [[r for _, r in pairs]]
            rows.append([CHRF().corpus_score(hyps, refs).score, BLEU(tokenize="char").corpus_score(hyps, refs).score, 0])
            print(json.dumps(rows))
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, payload]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0, let rows = try JSONSerialization.jsonObject(with: data) as? [[Double]] else {
            throw XCTSkip("python3 with sacrebleu and rouge-score is needed (scripts/install-deps.sh)")
        }
        return rows
    }

    func testMatchesSacreBLEUAndRougeScore() throws {
        let ref = try reference()
        for (i, (h, r)) in Self.pairs.enumerated() {
            XCTAssertEqual(TextOverlap.chrF(h, r), ref[i][0], accuracy: 1e-4, "chrF \(h) / \(r)")
            XCTAssertEqual(TextOverlap.sentenceBLEU(h, r), ref[i][1], accuracy: 1e-4, "BLEU \(h) / \(r)")
            XCTAssertEqual(TextOverlap.rougeL(h, r).f1, ref[i][2], accuracy: 1e-9, "ROUGE-L \(h) / \(r)")
        }
        let pairs = Self.pairs.map { (hypothesis: $0.0, reference: $0.1) }
        XCTAssertEqual(TextOverlap.corpusChrF(pairs), ref.last![0], accuracy: 1e-4)
        XCTAssertEqual(TextOverlap.corpusBLEU(pairs), ref.last![1], accuracy: 1e-4)
        XCTAssertGreaterThan(TextOverlap.rougeL("입원 1일당 5만원", "5만원").f1, 0, "Hangul is scored, not dropped")
    }
}

final class EvalStatisticsTests: XCTestCase {
    func testRankingAndRefusalMetrics() {
        XCTAssertEqual(RetrievalMetrics.recall(rank: 3, k: 5), 1)
        XCTAssertEqual(RetrievalMetrics.recall(rank: nil, k: 5), 0)
        XCTAssertEqual(RetrievalMetrics.reciprocalRank(rank: 4), 0.25)
        XCTAssertEqual(RetrievalMetrics.ndcg(rank: 1), 1)
        XCTAssertEqual(RetrievalMetrics.ndcg(rank: 3), 0.5)
        XCTAssertEqual(RetrievalMetrics.ndcg(rank: 11), 0)
        let c = RefusalMetrics.counts([(true, true), (true, false), (false, true), (false, false), (true, true)])
        XCTAssertEqual(c, { var x = RefusalMetrics.Counts(); x.truePositives = 2; x.falsePositives = 1; x.falseNegatives = 1; return x }())
        XCTAssertEqual(c.precision, 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(c.f1, 2.0 / 3, accuracy: 1e-12)
    }

    func testBootstrapIntervalsCoverTheMeanAndPairedDifferences() {
        let b = Bootstrap(resamples: 2000)
        let xs = (0..<100).map { Double($0 % 10) }
        let i = b.interval(xs) { $0.reduce(0, +) / Double($0.count) }
        XCTAssertEqual(i.value, 4.5, accuracy: 1e-12)
        XCTAssertLessThan(i.low, 4.5); XCTAssertGreaterThan(i.high, 4.5)
        XCTAssertEqual(i.high - i.low, 2 * 1.96 * 2.87 / 10, accuracy: 0.25, "≈ ±1.96 σ/√n")
        let same = b.difference(xs, xs) { $0.reduce(0, +) / Double($0.count) }
        XCTAssertEqual(same.value, 0); XCTAssertEqual(same.low, 0); XCTAssertEqual(same.high, 0); XCTAssertEqual(same.p, 1)
        let better = b.difference(xs, xs.map { $0 + 1 }) { $0.reduce(0, +) / Double($0.count) }
        XCTAssertEqual(better.value, 1, accuracy: 1e-12)
        XCTAssertEqual(better.low, 1, accuracy: 1e-12, "a constant shift has no spread when paired")
        XCTAssertLessThan(better.p, 0.01)
    }

    /// A row as `damda eval --out` writes it.
    static func row(_ config: String, _ id: Int, f1: Double, refused: Bool = false, kind: EvalRow.Kind = .answerable) -> EvalRow {
        let answerable = kind == .answerable
        let object: [String: Any] = [
            "config": config, "id": "q\(id)", "kind": kind.rawValue, "question": "질문 \(id)", "gold": answerable ? ["5만원"] : [],
            "doc_id": "d", "answer": refused ? "답변을 찾을 수 없습니다." : "5만원", "refused": refused, "cited": ["d"],
            "gold_in_prompt": true, "gold_rank": 1, "em": f1 == 100, "f1": f1, "chrf": f1, "rouge_l": f1, "bleu": f1,
            "gold_in_answer": f1 == 100, "grounding": 100, "citation_precision": 100, "unsupported": false,
            "prompt_tokens": 100, "answer_tokens": 3, "generation_seconds": 0.1, "seconds": 0.2, "tags": [String](),
        ]
        return try! JSONDecoder().decode(EvalRow.self, from: JSONSerialization.data(withJSONObject: object))
    }

    /// The summary pairs configurations by question, and the gate flags only a metric whose whole
    /// interval lies below the baseline's value.
    func testSummaryAndGate() throws {
        let configs = [try EvalConfiguration.parse("rag"), try EvalConfiguration.parse("peft+rag")]
        var rows: [EvalRow] = []
        for i in 0..<20 { rows.append(Self.row("rag", i, f1: i % 2 == 0 ? 100 : 0)) }
        for i in 0..<20 { rows.append(Self.row("peft+rag", i, f1: 100)) }
        for i in 20..<24 { rows.append(Self.row("rag", i, f1: 0, refused: true, kind: .offDomain)); rows.append(Self.row("peft+rag", i, f1: 0, refused: true, kind: .offDomain)) }
        let report = EvalReport.make(rows: rows, configs: configs, model: "m", index: "i", overheadPct: 0, bootstrap: Bootstrap(resamples: 500))
        XCTAssertEqual(report.questions.answerable, 20); XCTAssertEqual(report.questions.offDomain, 4)
        XCTAssertEqual(report.metrics["rag"]?["f1"]?.value ?? 0, 50, accuracy: 1e-9)
        XCTAssertEqual(report.metrics["peft+rag"]?["refusal_f1"]?.value ?? 0, 100, accuracy: 1e-9)
        let diff = try XCTUnwrap(report.comparisons.first { $0.config == "peft+rag" && $0.metric == "f1" })
        XCTAssertEqual(diff.difference.value, 50, accuracy: 1e-9)
        XCTAssertGreaterThan(diff.difference.low, 0)
        XCTAssertTrue(report.regressions(against: report).isEmpty, "a report never regresses against itself")
        // The better configuration's rows as the baseline of the worse: F1 regressed, refusal did not.
        var baseline = report
        baseline.metrics["rag"] = report.metrics["peft+rag"]
        let regressions = report.regressions(against: baseline).map(\.metric)
        XCTAssertTrue(regressions.contains("f1"))
        XCTAssertFalse(regressions.contains("refusal_f1"))
        let encoded = try JSONEncoder().encode(report)
        XCTAssertEqual(try JSONDecoder().decode(EvalReport.self, from: encoded).metrics["rag"]?["f1"], report.metrics["rag"]?["f1"])
        XCTAssertTrue(HTMLReport.render(report, rows: rows).contains("<svg"))
        // Rows written before the gold phrase in the prompt was kept are left out of its share.
        var phrase = rows.filter { $0.config == "rag" && $0.kind == .answerable }
        for i in phrase.indices where i < 10 { phrase[i].goldPhraseInPrompt = i < 4 }
        let held = try XCTUnwrap(EvalMetric.all(retrieval: true).first { $0.name == "gold_phrase_in_prompt" })
        XCTAssertEqual(held.value(phrase), 40, accuracy: 1e-9)
    }

    func testConfigurationSpecs() throws {
        XCTAssertEqual(try EvalConfiguration.parse("base").retrieval, "none")
        XCTAssertEqual(try EvalConfiguration.parse("base").adapter, "none")
        let c = try EvalConfiguration.parse("wide=adapter=none,retrieval=bm25,k=8,budget=1024")
        XCTAssertEqual([c.adapter, c.retrieval], ["none", "bm25"]); XCTAssertEqual(c.k, 8); XCTAssertEqual(c.budget, 1024)
        XCTAssertEqual(try EvalConfiguration.parse("peft+rag=k=3").adapter, "default", "a preset keeps what the spec does not name")
        XCTAssertThrowsError(try EvalConfiguration.parse("x=retrieval=magic"))
        XCTAssertThrowsError(try EvalConfiguration.parse("x=k=0"))
        XCTAssertThrowsError(try EvalConfiguration.parse("unknown"))
    }
}

final class JudgeParsingTests: XCTestCase {
    /// Judges wrap JSON in prose or fences, use strings for numbers, or go out of range.
    func testRubricRepliesAreValidated() {
        XCTAssertEqual(JudgeClient.parseScores("{\"correctness\": 5, \"groundedness\": 4, \"helpfulness\": 3}"),
                       JudgeClient.Scores(correctness: 5, groundedness: 4, helpfulness: 3))
        XCTAssertEqual(JudgeClient.parseScores("채점 결과입니다.\n```json\n{\"correctness\": \"2\", \"groundedness\": 1.0, \"helpfulness\": 5}\n```"),
                       JudgeClient.Scores(correctness: 2, groundedness: 1, helpfulness: 5))
        XCTAssertNil(JudgeClient.parseScores("{\"correctness\": 7, \"groundedness\": 4, \"helpfulness\": 3}"), "outside 1–5")
        XCTAssertNil(JudgeClient.parseScores("{\"correctness\": 5}"), "a missing score")
        XCTAssertNil(JudgeClient.parseScores("답변을 찾을 수 없습니다."))
        XCTAssertNil(JudgeClient.parseScores("{\"correctness\": 5, "), "torn JSON")
        XCTAssertEqual(JudgeClient.parseWinner("{\"winner\": \"B\"}"), "B")
        XCTAssertEqual(JudgeClient.parseWinner("I pick {\"winner\": \"tie\"}."), "tie")
        XCTAssertNil(JudgeClient.parseWinner("{\"winner\": \"C\"}"))
    }
}
