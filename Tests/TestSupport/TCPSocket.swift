import Foundation
import Glibc

/// A blocking TCP socket to 127.0.0.1, just enough to probe test servers.
public final class TCPSocket {
    private var fd: Int32

    /// Connects to 127.0.0.1:`port`; `nil` if nothing accepts. `timeout` bounds every later read and write.
    public init?(connectingTo port: Int, timeout: Duration) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        let (seconds, attoseconds) = timeout.components
        var limit = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(clamping: port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                connect(fd, raw, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        if !connected {
            Glibc.close(fd)
            return nil
        }
    }

    deinit { close() }

    /// Writes all of `bytes`; `false` if the peer went away or the write timed out.
    public func write(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { return false }
            sent += count
        }
        return true
    }

    /// Reads exactly `count` bytes; `nil` on end of stream, error or timeout.
    public func read(exactly count: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var received = 0
        while received < count {
            let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + received, count - received, 0) }
            guard got > 0 else { return nil }
            received += got
        }
        return buffer
    }

    /// Reads what has arrived, at least one byte and at most `count`; `nil` on end of stream, error or timeout.
    public func read(upTo count: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, count, 0) }
        guard got > 0 else { return nil }
        return Array(buffer.prefix(got))
    }

    /// Closes the socket; later calls fail.
    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }
}
