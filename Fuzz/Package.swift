// swift-tools-version:6.1
// libFuzzer targets for Shoal's parsers: every byte a peer or tracker reads
// from the network goes through one of them. A package of its own, so the
// main build never needs the fuzzer runtime. Build and run with `Fuzz/run`
// (see the README's "Fuzzing" section).
import PackageDescription

/// Each target is one file exposing `LLVMFuzzerTestOneInput`; libFuzzer brings `main`.
func fuzzTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(
        name: name,
        dependencies: ["FuzzSupport"] + dependencies,
        path: "Targets/\(name)",
        swiftSettings: [.unsafeFlags(["-parse-as-library"])]
    )
}

let package = Package(
    name: "ShoalFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Shoal", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
    ],
    targets: [
        .target(
            name: "FuzzSupport",
            dependencies: [.product(name: "ShoalWire", package: "Shoal")],
            path: "Targets/FuzzSupport"
        ),
        fuzzTarget("FuzzFrameDecoder", [
            .product(name: "ShoalWire", package: "Shoal"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        fuzzTarget("FuzzMessages", [
            .product(name: "ShoalWire", package: "Shoal"),
            .product(name: "ShoalCore", package: "Shoal"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        fuzzTarget("FuzzManifest", [.product(name: "ShoalCore", package: "Shoal")]),
        fuzzTarget("FuzzChunkMap", [.product(name: "ShoalCore", package: "Shoal")]),
        fuzzTarget("FuzzInflater", [
            .product(name: "ShoalWire", package: "Shoal"),
            .product(name: "ShoalCore", package: "Shoal"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
    ]
)
