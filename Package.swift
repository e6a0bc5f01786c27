// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "cachesync",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "cachesync", targets: ["cachesync"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // C shims: module maps and static inline helpers only.
        .systemLibrary(name: "CMongoc", pkgConfig: "libmongoc-1.0", providers: [.apt(["libmongoc-dev", "libbson-dev"])]),
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),

        // Pure BSON value model shared by the Mongo bridge and the core.
        .target(name: "BSONModel"),

        // Bridges: owning Swift wrappers over the C libraries.
        .target(name: "MongoBridge", dependencies: ["CMongoc", "BSONModel"]),
        // Redis Cluster's key-to-slot mapping (CRC16, hash tags), pure: the bridge routes with it, the core names keys.
        .target(name: "RedisSlot"),
        .target(name: "RedisBridge", dependencies: ["CHiredis", "COpenSSL", "RedisSlot"]),

        // Pure core: config, events, keys, strategies, TTL. No C, no I/O.
        .target(name: "CacheSyncCore", dependencies: [
            "BSONModel",
            "RedisSlot",
            .product(name: "Yams", package: "Yams"),
        ]),

        // Services: watchers, applier, checkpoints, leases, HTTP API, metrics, supervisor.
        .target(name: "CacheSync", dependencies: [
            "CacheSyncCore", "MongoBridge", "RedisBridge", "RedisSlot", "BSONModel",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
        ], swiftSettings: [
            // The test-only switches (TestSwitches.swift) exist in debug builds only, which the tests run.
            .define("CACHESYNC_TEST_SWITCHES", .when(configuration: .debug)),
        ]),

        // Command line only. The release binary on Linux is linked by lld with packed relative relocations
        // (2.4 MB of relocation records become 40 kB) and without exporting its 22,000 Swift symbols to the
        // dynamic table, which nothing looks up: 4 MiB less resident memory (BENCHMARKS.md).
        .executableTarget(name: "cachesync", dependencies: [
            "CacheSync",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], linkerSettings: [
            .unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                          "-Xlinker", "--no-export-dynamic"],
                         .when(platforms: [.linux], configuration: .release)),
        ]),

        // Benchmarks: the apply path, end to end and the footprint, beside the machine's limits (BENCHMARKS.md).
        .executableTarget(name: "cachesync-bench", dependencies: [
            "CacheSync", "CacheSyncCore", "MongoBridge", "RedisBridge", "RedisSlot", "BSONModel", "CHiredis", "TestSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], path: "Benchmarks/cachesync-bench"),

        // Test support: starts real redis-server and MongoDB wire servers.
        .target(name: "TestSupport", dependencies: ["RedisBridge", "MongoBridge", "CacheSyncCore"], path: "Tests/TestSupport"),

        .testTarget(name: "CacheSyncCoreTests", dependencies: ["CacheSyncCore", "BSONModel", "RedisSlot"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "BridgeTests", dependencies: ["CMongoc", "CHiredis", "MongoBridge", "RedisBridge", "BSONModel", "CacheSyncCore", "TestSupport"]),
        // The services layer on its own: pure tests, and tests against one real redis-server.
        .testTarget(name: "CacheSyncTests", dependencies: [
            "CacheSync", "CacheSyncCore", "RedisBridge", "BSONModel", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "CacheSyncIntegrationTests", dependencies: ["CacheSync", "CacheSyncCore", "MongoBridge", "RedisBridge", "RedisSlot", "BSONModel", "TestSupport"]),
    ]
)

// The libFuzzer targets (scripts/fuzz.sh, SECURITY.md). They link only when built with `-sanitize=fuzzer`, which
// `swift build --build-tests` does not pass, so the target exists only when CACHESYNC_FUZZ is set.
if Context.environment["CACHESYNC_FUZZ"] != nil {
    package.targets.append(.executableTarget(name: "cachesync-fuzz", dependencies: ["CacheSyncCore", "BSONModel"], linkerSettings: [
        // gold stops with an internal DWARF error on the sanitized objects.
        .unsafeFlags(["-use-ld=lld"]),
    ]))
}
