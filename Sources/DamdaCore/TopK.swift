extension Array {
    /// The first `k` elements in `by` order, without sorting everything (top-k sampling,
    /// vector search). Inlinable so callers in other modules get it specialized: the generic
    /// form went through value witnesses per element (most of BM25's 4 ms at 100k chunks).
    @inlinable
    public func partialTop(_ k: Int, by less: (Element, Element) -> Bool) -> [Element] {
        var best: [Element] = []
        best.reserveCapacity(k + 1)
        for x in self {
            if best.count < k || less(x, best[best.count - 1]) {
                let pos = best.firstIndex(where: { less(x, $0) }) ?? best.count
                best.insert(x, at: pos)
                if best.count > k { best.removeLast() }
            }
        }
        return best
    }
}
