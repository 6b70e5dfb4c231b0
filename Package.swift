// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Shoal",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "shoal", targets: ["shoal"]),
        .executable(name: "shoal-bench", targets: ["shoal-bench"]),
        .library(name: "ShoalCore", targets: ["ShoalCore"]),
        .library(name: "ShoalWire", targets: ["ShoalWire"]),
        .library(name: "ShoalTracker", targets: ["ShoalTracker"]),
        .library(name: "ShoalPeer", targets: ["ShoalPeer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        // The operator's web page, JSON API and /metrics (`shoal tracker --http`). Default traits
        // off: they only add swift-configuration, which Shoal does not use.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // Pure core: manifests, chunk digests, chunk maps, scoring, picking. No sockets, no files.
        .target(
            name: "ShoalCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        // Debian's C zlib (zlib1g-dev) with a tiny shim over its init macros.
        .target(name: "CZlib", linkerSettings: [.linkedLibrary("z")]),
        // Linux epoll for shoal-bench's plain-socket load clients (not in Swift's Glibc module).
        .target(name: "CEpoll"),
        // The wire: frames, the frame decoder, messages, zlib compression. NIOCore only (no I/O).
        .target(
            name: "ShoalWire",
            dependencies: [
                "ShoalCore", "CZlib",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Connections: framed TCP client and server over NIOPosix, liveness probes,
        // TLS (swift-nio-ssl) with self-signed certificates (swift-certificates) pinned by fingerprint.
        .target(
            name: "ShoalNet",
            dependencies: [
                "ShoalWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The tracker: accounts, sessions, chunk registry, persistence (SQLite through GRDB, or PostgreSQL through postgres-nio).
        .target(
            name: "ShoalTracker",
            dependencies: [
                "ShoalCore", "ShoalWire", "ShoalNet",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The operator's view over HTTP (Hummingbird): status page, JSON API, Prometheus /metrics.
        .target(
            name: "ShoalOperator",
            dependencies: [
                "ShoalCore", "ShoalTracker",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // The peer: server, tracker client, download engine (filled by the peer issue).
        .target(
            name: "ShoalPeer",
            dependencies: [
                "ShoalCore", "ShoalWire", "ShoalNet", "ShoalSamples",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Generated sample data: files for the demo and the benchmarks, text for the downloader's inflate calibration.
        .target(name: "ShoalSamples"),
        // Test hosts in network namespaces and shaped links, for cross-host tests and `shoal-bench links`.
        .target(name: "ShoalLab"),
        .executableTarget(
            name: "shoal",
            dependencies: [
                "ShoalCore", "ShoalWire", "ShoalNet", "ShoalTracker", "ShoalPeer", "ShoalSamples", "ShoalOperator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "shoal-bench",
            dependencies: [
                "ShoalCore", "ShoalWire", "ShoalNet", "ShoalTracker", "ShoalPeer", "ShoalSamples", "ShoalLab", "CEpoll",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Fixture access and helpers shared by the test targets.
        .target(
            name: "ShoalTestSupport",
            dependencies: [
                "ShoalCore", "ShoalWire", "ShoalNet", "ShoalTracker", "ShoalPeer", "ShoalLab",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/ShoalTestSupport"
        ),
        .testTarget(name: "ShoalCoreTests", dependencies: ["ShoalCore", "ShoalTestSupport"]),
        .testTarget(
            name: "ShoalNetTests",
            dependencies: ["ShoalNet", "ShoalWire", "ShoalTestSupport", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOEmbedded", package: "swift-nio")]
        ),
        .testTarget(
            name: "ShoalWireTests",
            dependencies: [
                "ShoalWire", "ShoalCore", "ShoalTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "ShoalPeerTests",
            dependencies: [
                "ShoalPeer", "ShoalCore", "ShoalWire", "ShoalNet", "ShoalTracker", "ShoalTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Large-file transfers with shoal tracker, seed and get as separate processes.
        .testTarget(name: "ShoalTransferTests", dependencies: ["ShoalCore", "ShoalTestSupport"]),
        // Transfers between test hosts in network namespaces (needs root and iproute2).
        .testTarget(name: "ShoalCrossHostTests", dependencies: ["ShoalCore", "ShoalLab", "ShoalTestSupport"]),
        .testTarget(
            name: "ShoalTrackerTests",
            dependencies: [
                "ShoalTracker", "ShoalPeer", "ShoalNet", "ShoalWire", "ShoalCore", "ShoalTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The operator's view: JSON API, /metrics and access over loopback HTTP, and the page in headless Chromium.
        .testTarget(
            name: "ShoalOperatorTests",
            dependencies: [
                "ShoalOperator", "ShoalTracker", "ShoalNet", "ShoalWire", "ShoalCore", "ShoalTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
    ]
)
