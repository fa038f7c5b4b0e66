import DamdaAssistant
import Foundation

/// `damda eval --report FILE`: one self-contained HTML page (no network): the configurations, a
/// summary table with intervals, a bar chart per metric with interval whiskers, the paired
/// differences against the first configuration, and a sortable per-question table with each
/// configuration's answer, sources and failure tags.
public enum HTMLReport {
    public static func render(_ report: EvalReport, rows: [EvalRow]) -> String {
        let configs = report.configurations
        let shown = EvalMetric.all(retrieval: true).filter { m in configs.contains { report.metrics[$0.name]?[m.name] != nil } }
        var html = """
            <!doctype html><html lang="ko"><head><meta charset="utf-8"><title>Damda eval</title>
            <style>
            body{font-family:system-ui,'Noto Sans KR',sans-serif;margin:24px;color:#1d2433;max-width:1400px}
            h1{font-size:22px}h2{font-size:17px;margin-top:28px}table{border-collapse:collapse;font-size:13px}
            th,td{border:1px solid #d5dbe6;padding:4px 8px;vertical-align:top}th{background:#f1f4f9;cursor:pointer;text-align:left}
            td.num{text-align:right;white-space:nowrap}.ci{color:#6b7486;font-size:11px}.tag{display:inline-block;background:#fde8e8;
            color:#9b1c1c;border-radius:3px;padding:0 4px;margin:1px;font-size:11px}.ok{background:#e6f6ec;color:#146c2e}
            .charts{display:flex;flex-wrap:wrap;gap:16px}.chart{border:1px solid #e3e7ee;padding:8px}.muted{color:#6b7486}
            .better{color:#146c2e}.worse{color:#9b1c1c}
            </style></head><body>
            <h1>Damda eval</h1>
            <p class="muted">model \(esc(report.model)) · index \(esc(report.index)) · \(esc(report.created)) ·
            \(report.questions.answerable) answerable, \(report.questions.unanswerable) unanswerable (article hidden),
            \(report.questions.offDomain) off-domain questions · 95% bootstrap intervals over questions (\(report.resamples) resamples) ·
            eval overhead \(report.overheadPct.map { String(format: "%.2f%% of answering time", $0) } ?? "not measured (every answer came from an earlier run)")</p>
            <h2>Configurations</h2><table><tr><th>name</th><th>spec</th></tr>
            """
        for c in configs { html += "<tr><td>\(esc(c.name))</td><td>\(esc(c.summary))</td></tr>" }
        html += "</table><h2>Summary</h2><table id=\"summary\"><tr><th>metric</th>" + configs.map { "<th>\(esc($0.name))</th>" }.joined() + "</tr>"
        for m in shown {
            html += "<tr><td>\(esc(m.label))</td>"
            for c in configs {
                if let v = report.metrics[c.name]?[m.name] {
                    html += "<td class=\"num\">\(fmt(v.value)) <span class=\"ci\">[\(fmt(v.low)), \(fmt(v.high))] n=\(v.n)</span></td>"
                } else {
                    html += "<td class=\"num muted\">—</td>"
                }
            }
            html += "</tr>"
        }
        html += "</table>"
        if !report.comparisons.isEmpty, let base = configs.first {
            html += "<h2>Against \(esc(base.name)) (paired)</h2><table><tr><th>config</th><th>metric</th><th>difference</th><th>95% interval</th><th>p</th></tr>"
            for d in report.comparisons {
                let m = shown.first { $0.name == d.metric }
                let sign = d.difference.low > 0 ? (m?.higherIsBetter ?? true ? "better" : "worse")
                    : d.difference.high < 0 ? (m?.higherIsBetter ?? true ? "worse" : "better") : ""
                html += "<tr><td>\(esc(d.config))</td><td>\(esc(m?.label ?? d.metric))</td><td class=\"num \(sign)\">\(fmt(d.difference.value, signed: true))</td>"
                html += "<td class=\"num\">[\(fmt(d.difference.low, signed: true)), \(fmt(d.difference.high, signed: true))]</td><td class=\"num\">\(String(format: "%.3f", d.difference.p))</td></tr>"
            }
            html += "</table>"
        }
        if let j = report.judge {
            html += "<h2>Judge</h2><p class=\"muted\">\(esc(j.model)) at \(esc(j.url)): 정확성, 근거성, 유용성 on 1–5; A/B asked in both orders, a tie when they disagree.</p>"
            html += "<table id=\"judge\"><tr><th>config</th><th>정확성</th><th>근거성</th><th>유용성</th><th>valid</th><th>invalid</th><th>errors</th></tr>"
            for c in configs {
                guard let r = j.scores[c.name] else { continue }
                html += "<tr><td>\(esc(c.name))</td>" + [r.correctness, r.groundedness, r.helpfulness].map {
                    "<td class=\"num\">\(String(format: "%.2f", $0.value)) <span class=\"ci\">[\(String(format: "%.2f", $0.low)), \(String(format: "%.2f", $0.high))]</span></td>"
                }.joined() + "<td class=\"num\">\(r.counts.valid)</td><td class=\"num\">\(r.counts.invalid)</td><td class=\"num\">\(r.counts.errors)</td></tr>"
            }
            html += "</table>"
            if let f = j.feedback {
                html += "<p>Against people's ratings: \(f.rated) rated answers, \(f.judged) judged (\(f.invalid) invalid, \(f.errors) errors), "
                html += "agreement \(String(format: "%.1f", f.agreement))%, Cohen's κ \(f.kappa.map { String(format: "%.2f", $0) } ?? "n/a").</p>"
            }
            if !j.pairwise.isEmpty {
                html += "<table><tr><th>config</th><th>against</th><th>wins</th><th>losses</th><th>ties</th><th>invalid</th><th>errors</th></tr>"
                for p in j.pairwise {
                    html += "<tr><td>\(esc(p.config))</td><td>\(esc(p.baseline))</td><td class=\"num\">\(p.configWins)</td><td class=\"num\">\(p.baselineWins)</td>"
                    html += "<td class=\"num\">\(p.ties)</td><td class=\"num\">\(p.invalid)</td><td class=\"num\">\(p.errors)</td></tr>"
                }
                html += "</table>"
            }
        }
        for p in report.panel ?? [] {
            html += "<h2>People's blind A/B panel: \(esc(p.survey.name))</h2><p class=\"muted\">\(p.evaluators) evaluators, \(p.votes) votes, \(p.corrections) corrections, \(p.survey.items) items; "
            html += "win rate of A with a tie counting half, 95% Wilson interval; ratings 1–5 with 95% intervals.</p>"
            html += "<table class=\"panel\"><tr><th>A</th><th>B</th><th>votes</th><th>A wins</th><th>B wins</th><th>ties</th><th>A win rate</th><th></th></tr>"
            for x in p.pairs {
                let bar = "<svg width=\"160\" height=\"12\"><rect width=\"160\" height=\"12\" fill=\"#eef1f6\"/><rect width=\"\(Int(160 * x.aWinRate))\" height=\"12\" fill=\"#2457c5\"/>"
                    + "<line x1=\"\(160 * x.aWinRateLow)\" x2=\"\(160 * x.aWinRateHigh)\" y1=\"6\" y2=\"6\" stroke=\"#111\" stroke-width=\"2\"/></svg>"
                html += "<tr><td>\(esc(x.a))</td><td>\(esc(x.b))</td><td class=\"num\">\(x.votes)</td><td class=\"num\">\(x.aWins)</td><td class=\"num\">\(x.bWins)</td><td class=\"num\">\(x.ties)</td>"
                html += "<td class=\"num\">\(String(format: "%.0f%%", 100 * x.aWinRate)) <span class=\"ci\">[\(String(format: "%.0f", 100 * x.aWinRateLow)), \(String(format: "%.0f", 100 * x.aWinRateHigh))]</span></td><td>\(x.votes > 0 ? bar : "")</td></tr>"
            }
            html += "</table><table class=\"panel\"><tr><th>config</th><th>정확성</th><th>근거</th><th>유용성</th></tr>"
            for c in p.survey.configs {
                html += "<tr><td>\(esc(c))</td>" + ["accuracy", "grounding", "usefulness"].map { k in
                    guard let r = p.ratings[c]?[k] else { return "<td class=\"num\">—</td>" }
                    return "<td class=\"num\">\(String(format: "%.2f", r.mean)) <span class=\"ci\">[\(String(format: "%.2f", r.low)), \(String(format: "%.2f", r.high))] n=\(r.n)</span></td>"
                }.joined() + "</tr>"
            }
            html += "</table>"
        }
        html += "<h2>Charts</h2><div class=\"charts\">"
        for m in shown where m.gated || m.name.hasPrefix("refused") {
            html += chart(m, report: report)
        }
        html += "</div>"
        html += questionTable(rows, configs: configs)
        html += """
            <script>
            document.querySelectorAll('table.sortable th').forEach((th, i) => th.addEventListener('click', () => {
              const table = th.closest('table'), body = table.tBodies[0], rows = Array.from(body.rows);
              const dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
              const key = r => { const t = r.cells[i].dataset.v ?? r.cells[i].innerText; const n = parseFloat(t); return isNaN(n) ? t : n; };
              rows.sort((a, b) => { const x = key(a), y = key(b); return (x > y ? 1 : x < y ? -1 : 0) * dir; });
              rows.forEach(r => body.appendChild(r));
            }));
            </script></body></html>
            """
        return html
    }

    /// Horizontal bars, one per configuration, with the interval as a whisker; 0–100 scale.
    static func chart(_ m: EvalMetric, report: EvalReport) -> String {
        let all = report.configurations.map(\.name)
        let configs = report.configurations.filter { report.metrics[$0.name]?[m.name] != nil }
        let rowHeight = 26, width = 360, labelWidth = 90, top = 22
        let height = top + rowHeight * configs.count + 8
        let scale = max(100, configs.compactMap { report.metrics[$0.name]?[m.name]?.high }.max() ?? 100)
        func x(_ v: Double) -> Double { Double(labelWidth) + max(0, v) / scale * Double(width - labelWidth - 50) }
        var svg = "<div class=\"chart\"><svg width=\"\(width)\" height=\"\(height)\" role=\"img\" aria-label=\"\(esc(m.label))\">"
        svg += "<text x=\"0\" y=\"14\" font-size=\"13\" font-weight=\"600\">\(esc(m.label))</text>"
        let colors = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2"]
        for (i, c) in configs.enumerated() {
            guard let v = report.metrics[c.name]?[m.name] else { continue }
            let y = top + i * rowHeight
            let color = colors[(all.firstIndex(of: c.name) ?? i) % colors.count]
            svg += "<text x=\"0\" y=\"\(y + 16)\" font-size=\"12\">\(esc(c.name))</text>"
            svg += "<rect x=\"\(labelWidth)\" y=\"\(y + 4)\" width=\"\(String(format: "%.1f", x(v.value) - Double(labelWidth)))\" height=\"16\" fill=\"\(color)\"/>"
            svg += "<line x1=\"\(String(format: "%.1f", x(v.low)))\" x2=\"\(String(format: "%.1f", x(v.high)))\" y1=\"\(y + 12)\" y2=\"\(y + 12)\" stroke=\"#1d2433\" stroke-width=\"1.5\"/>"
            for e in [v.low, v.high] {
                svg += "<line x1=\"\(String(format: "%.1f", x(e)))\" x2=\"\(String(format: "%.1f", x(e)))\" y1=\"\(y + 7)\" y2=\"\(y + 17)\" stroke=\"#1d2433\" stroke-width=\"1.5\"/>"
            }
            svg += "<text x=\"\(String(format: "%.1f", x(v.high) + 4))\" y=\"\(y + 16)\" font-size=\"11\">\(fmt(v.value))</text>"
        }
        return svg + "</svg></div>"
    }

    static func questionTable(_ rows: [EvalRow], configs: [EvalConfiguration]) -> String {
        let byKey = Dictionary(rows.map { ("\($0.config)/\($0.kind.rawValue)/\($0.id)", $0) }, uniquingKeysWith: { a, _ in a })
        guard let first = configs.first else { return "" }
        let questions = rows.filter { $0.config == first.name }
        var html = "<h2>Questions</h2><p class=\"muted\">Click a column to sort. F1 per configuration; tags mark failures.</p>"
        html += "<table class=\"sortable\" id=\"questions\"><thead><tr><th>id</th><th>kind</th><th>question</th><th>gold</th>"
        for c in configs { html += "<th>\(esc(c.name)) F1</th><th>\(esc(c.name)) answer</th>" }
        html += "</tr></thead><tbody>"
        for q in questions {
            html += "<tr><td>\(esc(q.id))</td><td>\(q.kind.rawValue)</td><td>\(esc(q.question))</td><td>\(esc(q.gold.joined(separator: " | ")))</td>"
            for c in configs {
                guard let r = byKey["\(c.name)/\(q.kind.rawValue)/\(q.id)"] else { html += "<td></td><td></td>"; continue }
                let tags = r.tags.isEmpty ? (r.kind == .answerable ? "" : (r.refused ? "<span class=\"tag ok\">refused</span>" : ""))
                    : r.tags.map { "<span class=\"tag\">\($0)</span>" }.joined()
                let sources = r.cited.isEmpty ? "" : "<br><span class=\"muted\">sources: \(esc(r.cited.prefix(3).joined(separator: ", ")))</span>"
                html += "<td class=\"num\" data-v=\"\(String(format: "%.1f", r.f1))\">\(String(format: "%.1f", r.f1))</td>"
                html += "<td>\(esc(r.answer))\(sources) \(tags)</td>"
            }
            html += "</tr>"
        }
        return html + "</tbody></table>"
    }

    static func fmt(_ v: Double, signed: Bool = false) -> String {
        String(format: signed ? "%+.1f" : "%.1f", v)
    }

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
