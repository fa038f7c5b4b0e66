import DamdaAssistant
import DamdaCore
import DamdaEngine
import Foundation

/// `damda adapter calibrate`: fits an adapter's refusal probe. Every answerable question is asked
/// twice through the assistant, once as it is and once with its own document (or article) hidden
/// from retrieval, so the sources lack the answer; the model's state at the end of each prompt, after
/// `layer`, is one example. Logistic regression separates the two; its threshold is set on
/// out-of-fold scores, the folds split by article so that no article is scored by weights that
/// saw it, to refuse at most `answerableBudget` of the answerable questions.
public struct RefusalCalibration {
    public var layer = 9
    public var answerableBudget = 0.05
    public var folds = 5
    public var l2: Float = 1e-2
    public var epochs = 400
    public var learningRate: Float = 0.01
    /// What an unanswerable prompt hides from retrieval.
    public var negatives = Negatives.document

    public enum Negatives: String, Sendable, CaseIterable {
        /// The question's own document only: the rest of its article or topic still comes back,
        /// so the sources are on the subject and lack only the answer (a prompt whose sources
        /// still hold a gold answer is left out). The probe then cannot tell the kinds apart by
        /// whether the question's words appear in the sources, which paraphrased questions lack too.
        case document
        /// Every document of the question's article (`damda eval --unanswerable`).
        case article
    }

    public init() {}

    public struct Example: Sendable {
        public var state: [Float]
        public var unanswerable: Bool
        public var article: String
        /// The refusal's first-token probability on the same prompt, for comparison.
        public var firstTokenProbability: Float?
        public init(state: [Float], unanswerable: Bool, article: String, firstTokenProbability: Float? = nil) {
            self.state = state; self.unanswerable = unanswerable; self.article = article; self.firstTokenProbability = firstTokenProbability
        }
    }

    /// What the fit saw and how well it separates, out of fold.
    public struct Report: Codable, Sendable {
        public var layer: Int
        public var answerable: Int, unanswerable: Int
        /// Questions the relevance gate refused before the model (no state to read).
        public var refusedBeforeModel: Int
        /// Answerable questions whose own article was not among the sources: left out, since the
        /// sources lack their answer too.
        public var answerableWithoutGold: Int
        /// Unanswerable prompts whose sources still held a gold answer: left out.
        public var unanswerableWithGold: Int
        public var negatives: String
        public var folds: Int
        public var probeAUC: Double
        public var firstTokenAUC: Double?
        public var threshold: Float
        public var answerableRefused: Double, unanswerableRefused: Double
        /// The first-token probability's share of unanswerable questions refused at the same
        /// share of answerable ones refused.
        public var firstTokenUnanswerableRefused: Double?
        enum CodingKeys: String, CodingKey {
            case layer, answerable, unanswerable, folds, threshold
            case refusedBeforeModel = "refused_before_model", answerableWithoutGold = "answerable_without_gold"
            case unanswerableWithGold = "unanswerable_with_gold", negatives
            case probeAUC = "probe_auc", firstTokenAUC = "first_token_auc"
            case answerableRefused = "answerable_refused", unanswerableRefused = "unanswerable_refused"
            case firstTokenUnanswerableRefused = "first_token_unanswerable_refused"
        }
    }

    /// Asks every question of `runner` (answerable, and `runner.unanswerable` of them again with
    /// their article hidden) with `config`'s adapter and retrieval, one answer token each, and
    /// returns the prompts' states with what they were.
    public func collect(runner: EvalRunner, config: EvalConfiguration) async throws
        -> (examples: [Example], refusedBeforeModel: Int, answerableWithoutGold: Int, unanswerableWithGold: Int) {
        var config = config
        config.refusalProbe = "off"
        config.refusalThreshold = "1"      // never refuse at the first token; record its probability
        let assistant = try runner.assistant(for: config)
        let work = try runner.items().filter { $0.kind != .offDomain }
        let bar = runner.progress ? ProgressBar(total: Int64(work.count), label: "calibrate", unit: "prompts") : nil
        var examples: [Example] = []
        var beforeModel = 0, withoutGold = 0, withGold = 0
        for (i, item) in work.enumerated() {
            defer { bar?.update(to: Int64(i + 1)) }
            var cfg = assistant.config
            let document = item.question.documentID ?? ""
            cfg.filter.excludedDocuments = item.kind == .unanswerable && negatives == .document ? [document] : item.hidden
            cfg.promptStateLayer = layer
            cfg.maxAnswerTokens = 1
            let a = try await assistant.answer(item.question.question, config: cfg)
            guard let state = a.promptState else { beforeModel += 1; continue }
            if item.kind == .answerable && !a.citations.contains(where: { $0.documentID == document }) { withoutGold += 1; continue }
            if item.kind == .unanswerable && a.citations.contains(where: { AnswerMetrics.containsAnswer($0.text, golds: item.question.answers) }) {
                withGold += 1
                continue
            }
            examples.append(Example(state: state, unanswerable: item.kind == .unanswerable,
                                    article: document.split(separator: "-").dropLast().joined(separator: "-"),
                                    firstTokenProbability: a.refusalProbability))
        }
        bar?.finish()
        return (examples, beforeModel, withoutGold, withGold)
    }

    /// Fits the probe on `examples`.
    public func fit(_ examples: [Example], model: String, adapterSHA256: String?, trainedOn: String,
                    refusedBeforeModel: Int = 0, answerableWithoutGold: Int = 0, unanswerableWithGold: Int = 0) throws -> (probe: RefusalProbe, report: Report) {
        let y = examples.map(\.unanswerable)
        guard y.contains(true), y.contains(false) else { throw RefusalCalibrationError.oneClass }
        let vectors = examples.map { RefusalProbe.features($0.state) }
        let (center, scale) = LogisticRegression.standardization(vectors)
        let x = LogisticRegression.standardize(vectors, center: center, scale: scale)
        let articles = Array(Set(examples.map(\.article))).sorted()
        let k = max(2, min(folds, articles.count))
        let foldOf = Dictionary(uniqueKeysWithValues: articles.enumerated().map { ($0.element, $0.offset % k) })
        let outOfFold = LogisticRegression.outOfFoldLogits(x, y, fold: examples.map { foldOf[$0.article]! },
                                                           l2: l2, epochs: epochs, learningRate: learningRate)
        let cut = LogisticRegression.threshold(outOfFold: outOfFold, y, falsePositiveBudget: answerableBudget)
        let (w, b) = LogisticRegression.fit(x, y, l2: l2, epochs: epochs, learningRate: learningRate)
        let validation = RefusalProbe.Validation(folds: k, unanswerableRefused: cut.recall, answerableRefused: cut.falsePositiveRate,
                                                 answerable: y.filter { !$0 }.count, unanswerable: y.filter { $0 }.count)
        let probe = RefusalProbe(model: model, adapterSHA256: adapterSHA256, layer: layer, center: center, scale: scale, weights: w, bias: b,
                                 threshold: LogisticRegression.sigmoid(cut.logit), trainedOn: trainedOn, validation: validation)
        var firstTokenAUC: Double?, firstTokenRefused: Double?
        let firstToken = examples.compactMap(\.firstTokenProbability)
        if firstToken.count == examples.count {
            firstTokenAUC = Self.auc(firstToken, y)
            // Refusing the same share of answerable questions by the first-token probability.
            let answerable = examples.indices.filter { !y[$0] }.map { firstToken[$0] }.sorted(by: >)
            let allowed = answerable.isEmpty ? 0 : min(Int((Double(answerable.count) * cut.falsePositiveRate).rounded()), answerable.count - 1)
            let t = answerable.isEmpty ? 1 : answerable[allowed]
            let unanswerable = examples.indices.filter { y[$0] }
            firstTokenRefused = Double(unanswerable.filter { firstToken[$0] > t }.count) / Double(max(unanswerable.count, 1))
        }
        let report = Report(layer: layer, answerable: validation.answerable, unanswerable: validation.unanswerable,
                            refusedBeforeModel: refusedBeforeModel, answerableWithoutGold: answerableWithoutGold,
                            unanswerableWithGold: unanswerableWithGold, negatives: negatives.rawValue, folds: k,
                            probeAUC: Self.auc(outOfFold, y), firstTokenAUC: firstTokenAUC, threshold: probe.threshold,
                            answerableRefused: cut.falsePositiveRate, unanswerableRefused: cut.recall,
                            firstTokenUnanswerableRefused: firstTokenRefused)
        return (probe, report)
    }

    /// Area under the ROC curve: the chance that a random positive scores above a random negative (ties count half).
    public static func auc(_ scores: [Float], _ y: [Bool]) -> Double {
        let positives = scores.indices.filter { y[$0] }.map { scores[$0] }
        let negatives = scores.indices.filter { !y[$0] }.map { scores[$0] }.sorted()
        guard !positives.isEmpty, !negatives.isEmpty else { return 0.5 }
        var total = 0.0
        for p in positives {
            var lo = 0, hi = negatives.count          // negatives below p
            while lo < hi { let mid = (lo + hi) / 2; if negatives[mid] < p { lo = mid + 1 } else { hi = mid } }
            var ties = lo
            while ties < negatives.count && negatives[ties] == p { ties += 1 }
            total += Double(lo) + 0.5 * Double(ties - lo)
        }
        return total / Double(positives.count * negatives.count)
    }
}

public enum RefusalCalibrationError: DamdaError {
    case oneClass
    public var message: String {
        switch self {
        case .oneClass: "calibration needs prompts of both kinds: give answerable questions with doc_id and --unanswerable N > 0 (no prompt of one kind reached the model)"
        }
    }
}
