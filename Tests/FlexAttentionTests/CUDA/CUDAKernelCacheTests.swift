import Synchronization
import Testing
@testable import FlexAttention

/// Counts compilations and returns the source bytes as the "cubin", so the cache is tested without NVRTC.
final class CountingCompiler: KernelCompiler {
    let compilations = Mutex(0)
    var versionTag: String { "counting-1" }

    func compile(source: String, name: String, options: [String]) throws -> CompiledKernel {
        compilations.withLock { $0 += 1 }
        return CompiledKernel(cubin: Array(source.utf8), log: "")
    }

    var count: Int { compilations.withLock { $0 } }
}

@Suite("CUDA kernel cache")
struct CUDAKernelCacheTests {
    let request = KernelRequest(name: "k", source: "extern \"C\" __global__ void k() {}", architecture: .sm90a)

    @Test("entries round-trip; truncated, extended and corrupted entries are rejected")
    func entryFormat() {
        let payload: [UInt8] = Array(0..<200)
        let entry = KernelCacheEntry.encode(payload)
        #expect(KernelCacheEntry.decode(entry) == payload)
        #expect(KernelCacheEntry.decode(Array(entry.dropLast())) == nil)
        #expect(KernelCacheEntry.decode(entry + [0]) == nil)
        #expect(KernelCacheEntry.decode(Array(entry.prefix(10))) == nil)
        var flipped = entry
        flipped[KernelCacheEntry.headerSize + 17] ^= 1
        #expect(KernelCacheEntry.decode(flipped) == nil)
    }

    @Test("SHA-256 matches the FIPS 180-4 examples")
    func sha256() {
        #expect(hexString(SHA256.hash(Array("abc".utf8)))
            == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hexString(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test("the key changes with source, options, architecture and compiler version")
    func keys() {
        let cache = KernelCache(compiler: CountingCompiler(), root: nil)
        var changed = [request, request, request]
        changed[0].source += " "
        changed[1].extraOptions = ["--use_fast_math"]
        changed[2].architecture = .sm80
        let keys = Set(([request] + changed).map(cache.key(for:)))
        #expect(keys.count == 4)
        #expect(cache.key(for: request) == KernelCache(compiler: CountingCompiler(), root: nil).key(for: request))
    }

    @Test("memory, then disk across instances, and a corrupt entry is rebuilt")
    func memoryDiskAndCorruption() throws {
        let root = CUDATestSupport.temporaryDirectory()
        let compiler = CountingCompiler()
        let first = KernelCache(compiler: compiler, root: root)
        #expect(try first.cubin(for: request).origin == .compiled)
        #expect(try first.cubin(for: request).origin == .memory)
        #expect(try KernelCache(compiler: compiler, root: root).cubin(for: request).origin == .disk)
        #expect(compiler.count == 1)

        let path = "\(root)/kernels/\(first.key(for: request)).cubin"
        let bytes = try #require(FileSystem.read(path))
        try FileSystem.writeAtomically(Array(bytes.dropLast(3)), to: path)
        let (cubin, origin) = try KernelCache(compiler: compiler, root: root).cubin(for: request)
        #expect(origin == .compiled)
        #expect(cubin == Array(request.source.utf8))
        #expect(KernelCacheEntry.decode(try #require(FileSystem.read(path))) == cubin)
        #expect(compiler.count == 2)
    }

    @Test("many threads asking at once all get the same cubin")
    func concurrentRequests() async throws {
        let root = CUDATestSupport.temporaryDirectory()
        let compiler = CountingCompiler()
        let caches = [KernelCache(compiler: compiler, root: root), KernelCache(compiler: compiler, root: root)]
        let results = try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for index in 0..<32 {
                group.addTask { try caches[index % 2].cubin(for: request).cubin }
            }
            return try await group.reduce(into: [[UInt8]]()) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0 == Array(request.source.utf8) })
        #expect(FileSystem.contents(of: "\(root)/kernels").count == 1, "temporary files left behind")
    }
}
