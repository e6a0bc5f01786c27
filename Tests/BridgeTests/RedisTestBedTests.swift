import Glibc
import TestSupport
import Testing

/// The nx-27017 test server starts, restarts on the same port and leaves no process behind.
@Suite("Test bed: the nx-27017 MongoDB wire server", .enabled(if: MongoTestServer.startsOwnServer, "needs its own nx-27017"))
struct RedisTestBedTests {
    @Test("MongoTestServer starts, answers hello, restarts on the same port and stops leaving no process")
    func mongoServerLifecycle() throws {
        var pids: [Int32] = []
        var directory: String?
        try withMongoServer { server in
            directory = server.directory?.path
            #expect(server.uri == "mongodb://127.0.0.1:\(server.port)/?directConnection=true&serverSelectionTimeoutMS=5000")
            #expect(FreePort.accepts(server.port))
            #expect(MongoWireProbe.hello(port: server.port))
            pids.append(try #require(server.pid))

            try server.restart()
            #expect(MongoWireProbe.hello(port: server.port))
            pids.append(try #require(server.pid))
            #expect(pids[0] != pids[1])
            #expect(kill(pids[0], 0) != 0)

            try server.kill()
            #expect(!server.isRunning)
            #expect(!FreePort.accepts(server.port))
            try server.start()
            #expect(MongoWireProbe.hello(port: server.port))
            pids.append(try #require(server.pid))
        }
        for pid in pids { #expect(kill(pid, 0) != 0, "nx-27017 pid \(pid) still runs") }
        #expect(directory.map { access($0, F_OK) != 0 } == true)
    }

    @Test("an in-memory MongoTestServer starts, answers hello and stops")
    func inMemoryServer() throws {
        let port = try withMongoServer(.init(inMemory: true)) { server in
            #expect(MongoWireProbe.hello(port: server.port))
            #expect(server.database.hasPrefix("test_"))
            return server.port
        }
        #expect(!FreePort.accepts(port))
    }
}
