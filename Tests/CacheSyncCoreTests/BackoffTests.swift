import CacheSyncCore
import Testing

@Suite("Reconnect backoff")
struct BackoffTests {
    @Test("delays double from the base, stay within [ceiling/2, ceiling], and stop growing at the cap")
    func growsAndCaps() {
        var backoff = Backoff(base: 0.1, cap: 2)
        var random = SystemRandomNumberGenerator()
        let ceilings = [0.1, 0.2, 0.4, 0.8, 1.6, 2, 2, 2]
        for ceiling in ceilings {
            #expect(backoff.ceiling == ceiling)
            let delay = backoff.nextDelay(using: &random)
            #expect(delay >= ceiling / 2 && delay <= ceiling)
        }
    }

    @Test("a success resets the delay to the base")
    func resets() {
        var backoff = Backoff(base: 0.5, cap: 30)
        for _ in 0..<5 { _ = backoff.nextDelay() }
        #expect(backoff.ceiling == 16)
        backoff.reset()
        #expect(backoff.ceiling == 0.5)
        #expect(backoff.attempts == 0)
    }
}
