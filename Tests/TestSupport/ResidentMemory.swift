import Foundation
import Glibc

/// The resident memory of this process, read from `/proc/self/statm`, for leak checks.
public enum ResidentMemory {
    /// Resident set size in bytes; `nil` where `/proc` is not available.
    public static func bytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
