// swift-tools-version: 6.2
import PackageDescription

// The CPU micro-kernels are generic SIMD code (FlexAttentionSIMD) specialised twice: in the library itself for
// the portable baseline, and in FlexAttentionAVX512 for CPUs with AVX-512, chosen at run time. Without a target
// CPU flag Swift lowers SIMD fused multiply-add to a software call, so x86-64 builds name the baseline explicitly.
#if arch(x86_64)
let baselineFlags: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-march=x86-64-v3"])]
let avx512Flags: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-march=x86-64-v4"])]
#else
let baselineFlags: [SwiftSetting] = []
let avx512Flags: [SwiftSetting] = []
#endif

let package = Package(
    name: "FlexAttention",
    products: [
        .library(name: "FlexAttention", targets: ["FlexAttention"]),
        .executable(name: "flexattn", targets: ["flexattn"]),
        // The C interface (Sources/CFlexAttention/include/flexattention.h): libflexattention.so.
        .library(name: "flexattention", type: .dynamic, targets: ["FlexAttentionBridge"]),
    ],
    dependencies: [
        // The CLI's command line; the library target depends on nothing.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // Documentation only (`swift package generate-documentation`); no target depends on it.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .target(name: "FlexAttentionSIMD", swiftSettings: baselineFlags),
        .target(name: "FlexAttentionAVX512", dependencies: ["FlexAttentionSIMD"], swiftSettings: avx512Flags),
        // A header only: NCCL's unique ID as a C struct, because ncclCommInitRank takes it by value and Swift cannot
        // spell that call itself. NCCL is still loaded at run time; nothing is linked.
        .target(name: "CFlexNCCL"),
        .target(
            name: "FlexAttention",
            dependencies: ["FlexAttentionSIMD", "FlexAttentionAVX512", "CFlexNCCL"],
            swiftSettings: baselineFlags
        ),
        // The C interface's header and the thread-local storage of its error message.
        .target(name: "CFlexAttention"),
        // The C interface implemented over the Swift API (`@_cdecl` functions).
        .target(
            name: "FlexAttentionBridge",
            dependencies: ["FlexAttention", "CFlexAttention"],
            swiftSettings: baselineFlags
        ),
        .executableTarget(
            name: "flexattn",
            dependencies: ["FlexAttention", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: baselineFlags
        ),
        .testTarget(name: "FlexAttentionTests", dependencies: ["FlexAttention"], swiftSettings: baselineFlags),
        .testTarget(
            name: "FlexAttentionBridgeTests",
            dependencies: ["FlexAttentionBridge", "FlexAttention", "CFlexAttention"],
            swiftSettings: baselineFlags
        ),
    ],
    swiftLanguageModes: [.v6]
)
