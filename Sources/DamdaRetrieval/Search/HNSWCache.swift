import Crypto
import DamdaCore
import Foundation

extension SearchIndex {
    /// The graph is saved beside the store, keyed by the chunk rows and parameters it was built
    /// from; any ingest that changes the rows rebuilds it.
    func loadOrBuildHNSW(_ exact: ExactVectorIndex) throws -> HNSWIndex {
        var h = SHA256()
        for c in chunks { withUnsafeBytes(of: c.rowID) { h.update(bufferPointer: $0) } }
        h.update(data: Data("\(hnswParameters.m)/\(hnswParameters.efConstruction)/\(hnswParameters.seed)/\(exact.dimension)".utf8))
        let fingerprint = h.finalize().map { String(format: "%02x", $0) }.joined()
        let file = directory.appendingPathComponent("hnsw.bin")
        if try store.meta("hnsw_fingerprint") == fingerprint, let data = try? Data(contentsOf: file),
           let g = HNSWIndex(serialized: data, dimension: exact.dimension, vectors: exact.flat) {
            g.parameters.efSearch = hnswParameters.efSearch
            return g
        }
        let bar = ProgressBar(total: Int64(exact.count), label: "hnsw", unit: "vectors")
        let g = HNSWIndex(dimension: exact.dimension, vectors: exact.flat, parameters: hnswParameters) { bar.update(to: Int64($0)) }
        bar.finish()
        // Written to a temporary name and renamed: a kill mid-write leaves the old graph or none.
        let tmp = directory.appendingPathComponent("hnsw.bin.tmp")
        try g.serialized().write(to: tmp)
        guard rename(tmp.path, file.path) == 0 else { throw CocoaError(.fileWriteUnknown) }
        try store.setMeta("hnsw_fingerprint", fingerprint)
        return g
    }

}
