import Foundation
import Glibc

/// The resident memory of a process, read from `/proc/<pid>/statm`, for leak checks and benchmarks.
public enum ResidentMemory {
    /// Resident set size in bytes of process `pid` (this one when `nil`); `nil` where `/proc` has no answer.
    public static func bytes(pid: Int32? = nil) -> Int? {
        let path = "/proc/\(pid.map(String.init) ?? "self")/statm"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
