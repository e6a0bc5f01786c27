import Foundation

/// libFuzzer's driver: parses its own flags from `argv`, then calls `callback` with each input (SECURITY.md).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// `cachesync-fuzz --target=NAME [libFuzzer flags and corpus directories]`, built and run by scripts/fuzz.sh.
///
/// libFuzzer ignores flags that start with `--`, and keeps them when it starts itself again (`-minimize_crash`).
@main
enum FuzzMain {
    static func main() {
        guard FuzzTarget.selected != nil else {
            let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
            FileHandle.standardError.write(Data("usage: cachesync-fuzz --target=NAME [libFuzzer flags] [corpus...]; NAME: \(names)\n".utf8))
            exit(2)
        }
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, count in
            FuzzTarget.selected?.run(UnsafeBufferPointer(start: data, count: count))
            return 0
        })
    }
}
