import Foundation
import Glibc

/// Free TCP ports on the loopback interface for test servers.
public enum FreePort {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var handedOut: Set<Int> = []

    /// A port on 127.0.0.1 that nothing listens on now and that this process has not handed out before.
    public static func next() throws -> Int {
        for _ in 0..<50 {
            let port = try ephemeralPort()
            let isNew = lock.withLock { handedOut.insert(port).inserted }
            if isNew { return port }
        }
        throw TestServerError.noFreePort
    }

    /// Whether something on 127.0.0.1 accepts a TCP connection on `port`.
    public static func accepts(_ port: Int) -> Bool {
        guard let socket = TCPSocket(connectingTo: port, timeout: .milliseconds(500)) else { return false }
        socket.close()
        return true
    }

    /// A port the kernel picks for a socket bound to 127.0.0.1:0.
    private static func ephemeralPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestServerError.noFreePort }
        defer { Glibc.close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(fd, raw, length) == 0 && getsockname(fd, raw, &length) == 0
            }
        }
        guard bound else { throw TestServerError.noFreePort }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
