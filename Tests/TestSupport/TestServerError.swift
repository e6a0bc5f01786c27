/// Why a test server could not be started or controlled.
public enum TestServerError: Error, CustomStringConvertible {
    /// No free loopback port was found.
    case noFreePort
    /// The server's executable is not on PATH (or where the environment variable says).
    case executableNotFound(name: String, hint: String)
    /// `posix_spawn` could not start the executable.
    case spawnFailed(executable: String, reason: String)
    /// The server process exited while starting; `log` is what it printed.
    case exited(server: String, status: Int32, log: String)
    /// The server did not answer within the deadline; `log` is what it printed.
    case notReady(server: String, log: String)
    /// The server is external (`REDIS_URL` / `MONGODB_URI`), so this test cannot start, stop or kill it.
    case notManaged(server: String)

    /// What went wrong and what the server printed.
    public var description: String {
        switch self {
        case .noFreePort: "no free TCP port on 127.0.0.1"
        case .executableNotFound(let name, let hint): "\(name) not found on PATH; \(hint)"
        case .spawnFailed(let executable, let reason): "cannot start \(executable): \(reason)"
        case .exited(let server, let status, let log): "\(server) exited with status \(status) while starting:\n\(log)"
        case .notReady(let server, let log): "\(server) did not answer in time:\n\(log)"
        case .notManaged(let server): "\(server) is an external server; this test cannot control its process"
        }
    }
}
