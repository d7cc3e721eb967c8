/// A kernel loaded on a device with its launch shape and parameter list, ready to queue with any operands.
struct LoadedKernel<Operands>: Sendable {
    let function: CUDAFunction
    let signature: KernelSignature<Operands>
    let grid: (x: Int, y: Int, z: Int)
    let block: Int
    let sharedMemory: Int
    /// Whether the kernel is a ``ProgrammaticLaunch``, overlapping the kernel queued before it.
    let overlapsPrevious: Bool

    /// Loads an attention kernel through `cache` and raises its shared-memory limit to what it needs.
    init(_ kernel: some AttentionKernel, signature: KernelSignature<Operands>, grid: (x: Int, y: Int),
         cache: KernelCache, device: CUDADevice) throws {
        function = try cache.function(for: kernel, on: device)
        try function.setMaxDynamicSharedMemory(kernel.sharedMemoryBytes)
        self.signature = signature
        self.grid = (grid.x, grid.y, 1)
        block = kernel.threads
        sharedMemory = kernel.sharedMemoryBytes
        overlapsPrevious = false
    }

    init(function: CUDAFunction, signature: KernelSignature<Operands>, grid: (x: Int, y: Int, z: Int), block: Int,
         sharedMemory: Int = 0, overlapsPrevious: Bool = false) {
        self.function = function
        self.signature = signature
        self.grid = grid
        self.block = block
        self.sharedMemory = sharedMemory
        self.overlapsPrevious = overlapsPrevious
    }

    /// Queues the kernel on `stream` with `operands`; an empty grid (no rows or no keys) launches nothing.
    func enqueue(_ operands: Operands, on stream: CUDAStream?) throws {
        guard grid.x > 0, grid.y > 0, grid.z > 0 else { return }
        try function.launch(
            grid: grid, block: (block, 1, 1), sharedMemory: sharedMemory, stream: stream,
            overlappingPrevious: overlapsPrevious, arguments: signature.arguments(operands))
    }
}
