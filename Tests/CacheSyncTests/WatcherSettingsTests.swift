@testable import CacheSync
import Testing

/// The watcher's polling settings.
@Suite("Watcher idle back-off")
struct WatcherSettingsTests {
    @Test("after an empty read answered at once the sleep is a tenth of the quiet time, from 1 ms up to 50 ms")
    func idleSleep() {
        let settings = CollectionWatcher.Settings()
        let expected: [(quiet: Double, sleep: Double)] = [(0, 0.001), (0.005, 0.001), (0.02, 0.002), (0.1, 0.01),
                                                           (0.4, 0.04), (5, 0.05)]
        for (quiet, sleep) in expected {
            #expect(abs(settings.idle.sleep(quietFor: quiet) - sleep) < 1e-9, "quiet for \(quiet) s")
        }
    }

    @Test("a getMore batch holds several applied batches")
    func streamBatch() {
        let settings = CollectionWatcher.Settings()
        #expect(Int(settings.streamBatchSize) >= 4 * settings.limits.maxBatchEvents)
    }
}
