import DamdaAssistant
import DamdaEngine
import Foundation
import Hummingbird
import Prometheus

/// Prometheus metrics for `/metrics`: requests, tokens, latencies, queue depth.
public final class ServerMetrics: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    let generatedTokens: Counter
    let promptTokens: Counter
    let generations: Counter
    let cancelledGenerations: Counter
    let prefixCacheHits: Counter
    let prefixCachedTokens: Counter
    let queueDepth: Gauge
    let activeGenerations: Gauge
    static let buckets: [Duration] = [.milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(250), .milliseconds(500),
                                      .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60)]

    init() {
        generatedTokens = registry.makeCounter(name: "damda_generated_tokens_total", help: "Tokens generated.")
        promptTokens = registry.makeCounter(name: "damda_prompt_tokens_total", help: "Prompt tokens processed.")
        generations = registry.makeCounter(name: "damda_generations_total", help: "Generations finished.")
        cancelledGenerations = registry.makeCounter(name: "damda_cancelled_generations_total", help: "Generations stopped because the client went away.")
        prefixCacheHits = registry.makeCounter(name: "damda_prefix_cache_hits_total", help: "Generations whose prompt prefix came from the prefix KV cache.")
        prefixCachedTokens = registry.makeCounter(name: "damda_prefix_cache_tokens_total", help: "Prompt tokens not run because their keys and values came from the prefix cache.")
        queueDepth = registry.makeGauge(name: "damda_queue_depth", help: "Generation requests waiting for a slot.")
        activeGenerations = registry.makeGauge(name: "damda_active_generations", help: "Generations being interleaved now.")
    }

    func request(route: String, status: Int, duration: Duration) {
        registry.makeCounter(name: "damda_http_requests_total", labels: [("route", route), ("status", String(status))],
                             help: "HTTP requests by route and status.").increment()
        registry.makeDurationHistogram(name: "damda_request_duration_seconds", labels: [("route", route)], buckets: Self.buckets,
                                       help: "Request latency (streams: until the last byte).").record(duration)
    }

    /// Guard decisions by type and action; labels name types, never the data found.
    func record(_ decision: GuardDecision?) {
        guard let decision else { return }
        for f in decision.questionPII {
            registry.makeCounter(name: "damda_guard_pii_total", labels: [("place", "question"), ("type", f.type), ("action", f.action)],
                                 help: "Personal data found by the guards, by place, type and action.").increment()
        }
        for type in decision.answerPII {
            registry.makeCounter(name: "damda_guard_pii_total", labels: [("place", "answer"), ("type", type), ("action", "mask")],
                                 help: "Personal data found by the guards, by place, type and action.").increment()
        }
        if let i = decision.injection, i.flagged {
            registry.makeCounter(name: "damda_guard_injection_total", labels: [("action", decision.blocked == "injection" ? "block" : "flag")],
                                 help: "Questions the injection detector flagged, by action.").increment()
        }
    }

    /// Answer-cache lookups by result (exact, semantic, miss, bypass) and evictions by reason.
    func record(_ event: AnswerCacheEvent) {
        switch event {
        case let .hit(h): lookup(h.rawValue)
        case .miss: lookup("miss")
        case .bypass: lookup("bypass")
        case .stored:
            registry.makeCounter(name: "damda_cache_stores_total", help: "Answers stored in the answer cache.").increment()
        case let .evicted(reason, count):
            registry.makeCounter(name: "damda_cache_evictions_total", labels: [("reason", reason)],
                                 help: "Answer-cache entries removed, by reason (document, ttl, lru, clear).").increment(by: Int64(count))
        }
    }

    func lookup(_ result: String) {
        registry.makeCounter(name: "damda_cache_lookups_total", labels: [("result", result)],
                             help: "Answer-cache lookups by result: exact or semantic hit, miss, or bypass (not eligible).").increment()
    }

    func text(scheduler: DecodeScheduler, cache: AnswerCache?) -> String {
        if let cache {
            registry.makeGauge(name: "damda_cache_entries", help: "Answers in the answer cache.").set(Double(cache.count))
            registry.makeGauge(name: "damda_cache_bytes", help: "Bytes the answer cache's entries take.").set(Double(cache.bytes))
        }
        queueDepth.set(Double(scheduler.queueDepth))
        activeGenerations.set(Double(scheduler.activeCount))
        // Gauges set from the scheduler's own counters (its worker thread owns them).
        let stats = scheduler.decodeStats
        registry.makeGauge(name: "damda_decode_steps", help: "Batched decode steps run so far.").set(Double(stats.steps))
        registry.makeGauge(name: "damda_decode_step_tokens", help: "Tokens those decode steps ran (÷ steps = mean batch size).").set(Double(stats.tokens))
        registry.makeGauge(name: "damda_decode_batch_largest", help: "The most sequences one decode step has run.").set(Double(stats.largestBatch))
        return registry.emitToString()
    }
}

/// Counts every request by matched route and final status.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            metrics.request(route: context.endpointPath ?? "unmatched", status: response.status.code, duration: ContinuousClock.now - start)
            return response
        } catch {
            metrics.request(route: context.endpointPath ?? "unmatched", status: APIError.from(error).status.code, duration: ContinuousClock.now - start)
            throw error
        }
    }
}
