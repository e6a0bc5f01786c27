import CacheSyncCore
import RedisSlot
import Testing

@Suite struct RedisSlotTests {
    @Test func slotsMatchTheClusterSpecification() {
        // The specification's check value, and slots redis-server's CLUSTER KEYSLOT gives.
        #expect(RedisSlot.of("123456789") == 0x31C3 & 0x3FFF)
        #expect(RedisSlot.of("foo") == 12182)
        #expect(RedisSlot.of("bar") == 5061)
        #expect(RedisSlot.of("{user1000}.following") == RedisSlot.of("{user1000}.followers"))
        #expect(RedisSlot.of("{user1000}.following") == RedisSlot.of("user1000"))
        // An empty tag or an unclosed brace: the whole key.
        #expect(RedisSlot.of("{}foo") != RedisSlot.of("foo"))
        #expect(RedisSlot.of("a{b") == RedisSlot.of(utf8: Array("a{b".utf8)))
        #expect(RedisSlot.of("foo{}{bar}") != RedisSlot.of("bar"))
        #expect(RedisSlot.of("foo{{bar}}zap") == RedisSlot.of("{bar"))
    }

    @Test func everySlotHasATag() {
        for slot in [0, 1, 5061, 12182, RedisSlot.count - 1] {
            #expect(RedisSlot.of("{\(RedisSlot.tag(forSlot: slot))}anything") == slot)
        }
        #expect((0..<RedisSlot.count).allSatisfy { RedisSlot.of(RedisSlot.tag(forSlot: $0)) == $0 })
    }

    @Test func derivedKeysShareTheirKeysSlotInClusterMode() {
        for text in ["products:42", "{user:1}:a", "a{b", "a}b", "{}x", "x{}y}z", "plain"] {
            let key = CacheKey(text: text, colocatesDerivedKeys: true)
            #expect(RedisSlot.of(key.leaseKey) == RedisSlot.of(text), "\(key.leaseKey)")
            #expect(RedisSlot.of(key.accessCountKey) == RedisSlot.of(text), "\(key.accessCountKey)")
        }
        #expect(CacheKey(text: "products:42", colocatesDerivedKeys: true).leaseKey == "{products:42}:lease")
        #expect(CacheKey(text: "{user:1}:a", colocatesDerivedKeys: true).leaseKey == "{user:1}:a:lease")
        #expect(CacheKey(text: "products:42").leaseKey == "products:42:lease")
    }
}
