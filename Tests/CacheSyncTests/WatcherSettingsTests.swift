@testable import CacheSync
import Testing

/// The watcher's stream settings (its idle timings are tested with `WatcherStateMachine`).
@Suite("Watcher idle back-off")
struct WatcherSettingsTests {
    @Test("a getMore batch holds several applied batches")
    func streamBatch() {
        let settings = CollectionWatcher.Settings()
        #expect(Int(settings.streamBatchSize) >= 4 * settings.limits.maxBatchEvents)
    }
}
