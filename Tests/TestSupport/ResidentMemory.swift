import Foundation
import Glibc

/// The resident memory of a process, read from `/proc/<pid>/statm`, for leak checks and benchmarks.
public enum ResidentMemory {
    /// Resident set size in bytes of process `pid` (this one when `nil`); `nil` where `/proc` has no answer.
    public static func bytes(pid: Int32? = nil) -> Int? {
        statm(pid).map { $0.resident }
    }

    /// The part of `bytes` that is the process's own (anonymous) memory: without the file-backed pages of its
    /// binary and libraries, which the page cache shares and can drop, and whose resident share depends on how
    /// the kernel cached the files (`RssAnon`).
    public static func privateBytes(pid: Int32? = nil) -> Int? {
        statm(pid).map { $0.resident - $0.shared }
    }

    /// Resident and shared (file-backed) bytes from `/proc/<pid>/statm`.
    private static func statm(_ pid: Int32?) -> (resident: Int, shared: Int)? {
        let path = "/proc/\(pid.map(String.init) ?? "self")/statm"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 2, let resident = Int(fields[1]), let shared = Int(fields[2]) else { return nil }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        return (resident * page, shared * page)
    }
}
