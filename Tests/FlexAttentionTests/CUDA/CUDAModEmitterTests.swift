import Testing
@testable import FlexAttention

@Suite("CUDA mod emitter")
struct CUDAModEmitterTests {
    /// Compiles each grid kernel through one cache; returns how many compilations it took.
    private func compilations(_ kernels: [ModGridKernel]) throws -> Int {
        let compiler = CountingCompiler()
        let cache = KernelCache(compiler: compiler, root: nil)
        for kernel in kernels {
            _ = try cache.cubin(for: KernelRequest(name: kernel.name, source: kernel.source, architecture: .sm90a))
        }
        return compiler.count
    }

    @Test("new constants, parameters and tables compile no new kernel")
    func valuesAreArguments() throws {
        let bias = (0..<2 * 9).map(Float.init)
        #expect(try compilations([
            ModGridKernel(mask: .slidingWindow(48), label: "window"),
            ModGridKernel(mask: .slidingWindow(1024), label: "window"),
        ]) == 1)
        #expect(try compilations([
            ModGridKernel(mask: try .documentCausal(ids: [0, 0, 1, 1, 1]), label: "doc"),
            ModGridKernel(mask: try .documentCausal(ids: (0..<4096).map { $0 / 100 }), label: "doc"),
        ]) == 1)
        #expect(try compilations([
            ModGridKernel(scoreMod: .softCap(30), label: "cap"),
            ModGridKernel(scoreMod: .softCap(2), label: "cap"),
            ModGridKernel(scoreMod: try ScoreMod(parsing: "c * tanh(score / c)", parameters: ["c": .float(7)]), label: "cap"),
        ]) == 1)
        #expect(try compilations([
            ModGridKernel(scoreMod: try .relativePositionBias(bias, heads: 2, maxDistance: 4), label: "rel"),
            ModGridKernel(scoreMod: try .relativePositionBias(bias + bias, heads: 4, maxDistance: 4), label: "rel"),
        ]) == 1)
        // A different structure is a different kernel.
        #expect(try compilations([
            ModGridKernel(mask: .slidingWindow(48), label: "window"),
            ModGridKernel(mask: .chunked(48), label: "window"),
        ]) == 2)
    }

    @Test("literals are read from the arguments in ModExpression.arguments order")
    func argumentSlots() throws {
        let mod = CUDAModFunction(scoreMod: try ScoreMod(parsing: "score * 2.0 + float(q - 3) - 0.5"))
        #expect(mod.arguments.scalars == [.float(2), .int(3), .float(0.5)])
        #expect(mod.definition.contains("m.floats[0]"))
        #expect(mod.definition.contains("m.ints[0]"))
        #expect(mod.definition.contains("m.floats[1]"))
        #expect(!mod.definition.contains("0.5"))
    }

    @Test("a literal equal to a derivative constant keeps its own slot")
    func derivativeConstantsStayFixed() throws {
        // sqrt's derivative divides by 2·sqrt(x): that 2 is structural, the user's 2.0 is an argument.
        let mod = CUDAModFunction(scoreMod: try ScoreMod(parsing: "sqrt(score * 2.0)"))
        #expect(mod.definition.contains("m.floats[0]"))
        #expect(mod.definition.contains("__int_as_float(0x40000000)"))
    }

    @Test("Int to Float converts in 32 bits exactly when every input keeps the value in Int32")
    func narrowConversions() throws {
        func narrowed(_ text: String) throws -> Bool {
            let definition = CUDAModFunction(scoreMod: try ScoreMod(parsing: text)).definition
            #expect(definition.contains("(float)"), "\(text)")
            return definition.contains("(float)(int)")
        }
        // Differences, clamps, selects, quotients and remainders of indices stay within Int32.
        #expect(try narrowed("score + float(kv - q)"))
        #expect(try narrowed("score * float(abs(q - kv) / kv_len % b)"))
        #expect(try narrowed("score + float(min(max(h, q), kv) - where(q > kv, kv, q))"))
        // A product or sum of two indices can pass 2^31, and a literal is an argument of any size (lifted).
        #expect(try !narrowed("score + float(q * kv)"))
        #expect(try !narrowed("score + float(q + kv)"))
        #expect(try !narrowed("score + float(kv - 3)"))
    }
}
