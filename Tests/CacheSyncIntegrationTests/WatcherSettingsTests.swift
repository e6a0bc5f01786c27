@testable import CacheSync
import Testing

@Suite("Watcher idle back-off")
struct WatcherSettingsTests {
    @Test("after empty reads answered at once the sleep starts at 1 ms and doubles up to 50 ms")
    func idleSleep() {
        let settings = CollectionWatcher.Settings()
        let sleeps = (0..<9).map { settings.idleSleep(afterEmptyReads: $0) }
        #expect(sleeps == [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.05, 0.05, 0.05])
        #expect(settings.idleSleep(afterEmptyReads: 10_000) == 0.05)
    }

    @Test("a getMore batch holds several applied batches")
    func streamBatch() {
        let settings = CollectionWatcher.Settings()
        #expect(Int(settings.streamBatchSize) >= 4 * settings.limits.maxBatchEvents)
    }
}
