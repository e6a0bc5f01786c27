import BSONModel
import Foundation
import MongoBridge
import TestSupport
import Testing

/// libmongoc's own TLS (`tls=true&tlsCAFile=…` in the URI) against nx-27017 behind a TLS terminator (stunnel4) with
/// the tests' private CA: the URI options are all cachesync needs for a MongoDB that requires TLS.
@Suite("MongoDB over TLS", .serialized, .enabled(if: MongoTestServer.startsOwnServer, "needs its own nx-27017"))
struct MongoTLSTests {
    @Test("with the private CA the client writes and reads through TLS")
    func privateCA() throws {
        let server = try MongoTestServer()
        defer { server.cleanUp() }
        let terminator = try TLSTerminator(backendPort: server.port)
        let certificates = try TestCertificates.shared()
        let pool = try MongoClientPool(uri: "mongodb://127.0.0.1:\(terminator.port)/?directConnection=true&tls=true"
                                       + "&tlsCAFile=\(certificates.caFile)&serverSelectionTimeoutMS=5000")
        let ns = MongoNamespace(database: server.database, collection: "tls")
        try pool.insertOne(ns, ["_id": .int32(1), "v": .string("over TLS")])
        #expect(try pool.findOne(ns, id: .int32(1))?["v"] == .string("over TLS"))
    }

    @Test("a CA that did not sign the server's certificate is a clear error naming the TLS failure")
    func wrongCA() throws {
        let server = try MongoTestServer()
        defer { server.cleanUp() }
        let terminator = try TLSTerminator(backendPort: server.port)
        let certificates = try TestCertificates.shared()
        let pool = try MongoClientPool(uri: "mongodb://127.0.0.1:\(terminator.port)/?directConnection=true&tls=true"
                                       + "&tlsCAFile=\(certificates.otherCAFile)&serverSelectionTimeoutMS=2000")
        let ns = MongoNamespace(database: server.database, collection: "tls")
        let error = #expect(throws: MongoError.self) { try pool.insertOne(ns, ["_id": .int32(1)]) }
        let text = "\(String(describing: error))"
        #expect(text.contains("TLS handshake failed"), "\(text)")
        #expect(text.lowercased().contains("certificate verify failed") || text.contains("self-signed"), "\(text)")
    }
}
