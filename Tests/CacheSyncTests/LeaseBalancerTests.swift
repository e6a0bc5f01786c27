@testable import CacheSync
import Foundation
import RedisBridge
import Testing
import TestSupport

/// `LeaseBalancer` against a real redis-server: the live instances counted on Redis's clock, and the claim and
/// hand-over rules around the share ceil(M/N).
@Suite("LeaseBalancer: leases spread over the live replicas")
struct LeaseBalancerTests {
    @Test("instances heartbeating within one lease time are counted; the share is ceil(M/N)")
    func membersAndShare() throws {
        try withRedisServer { server in
            let redis = try server.connect()
            let prefix = server.key("cs:")
            let balancers = (0..<3).map { LeaseBalancer(checkpointPrefix: prefix, instanceId: "r\($0)", ttl: 0.5, collections: 12) }
            for balancer in balancers { try balancer.heartbeatIfDue(redis) }
            try balancers[0].heartbeatIfDue(redis)
            #expect(balancers[2].liveInstances == 3)
            #expect(balancers[2].share == 4)
            // r1 and r2 stop heartbeating: after a lease time r0 counts itself alone.
            Thread.sleep(forTimeInterval: 0.6)
            try balancers[0].heartbeatIfDue(redis)
            #expect(balancers[0].liveInstances == 1 && balancers[0].share == 12)
        }
    }

    @Test("below its share an instance claims a free lease at once, at its share only one seen free twice; above it, it hands over one lease per poll")
    func claimAndHandOver() throws {
        try withRedisServer { server in
            let redis = try server.connect()
            let prefix = server.key("cs:")
            let other = LeaseBalancer(checkpointPrefix: prefix, instanceId: "other", ttl: 10, collections: 4)
            let me = LeaseBalancer(checkpointPrefix: prefix, instanceId: "me", ttl: 10, collections: 4)
            try other.heartbeatIfDue(redis)
            try me.heartbeatIfDue(redis)
            #expect(me.share == 2)
            #expect(!me.mayClaim("a", free: false), "a held lease is never claimed")
            #expect(me.mayClaim("a", free: true))
            me.noteLeads("a", true)
            me.noteLeads("b", true)
            #expect(!me.mayClaim("c", free: true), "at its share: not at the first sight")
            #expect(me.mayClaim("c", free: true), "seen free twice: nobody below its share took it")
            me.noteLeads("c", true)
            #expect(me.shouldHandOver("c", poll: 0.2), "three of four with two instances: one too many")
            me.noteLeads("d", true)
            #expect(!me.shouldHandOver("d", poll: 0.2), "one hand-over per poll")
            Thread.sleep(forTimeInterval: 0.25)
            #expect(me.shouldHandOver("d", poll: 0.2))
            #expect(!me.shouldHandOver("a", poll: 0), "at its share again")
        }
    }
}
