/// One kernel launch ready to queue, any number of times (benchmarks repeat it).
struct KernelLaunch {
    let function: CUDAFunction
    let grid: (x: Int, y: Int, z: Int)
    let block: Int
    let sharedMemory: Int
    let arguments: [KernelArgument]

    /// Loads `kernel` through `cache` and raises its shared-memory limit to what it needs.
    init(_ kernel: some AttentionKernel, grid: (x: Int, y: Int), arguments: [KernelArgument], cache: KernelCache,
         device: CUDADevice) throws {
        function = try cache.function(for: kernel, on: device)
        try function.setMaxDynamicSharedMemory(kernel.sharedMemoryBytes)
        self.grid = (grid.x, grid.y, 1)
        block = kernel.threads
        sharedMemory = kernel.sharedMemoryBytes
        self.arguments = arguments
    }

    init(function: CUDAFunction, grid: (x: Int, y: Int, z: Int), block: Int, arguments: [KernelArgument]) {
        self.function = function
        self.grid = grid
        self.block = block
        sharedMemory = 0
        self.arguments = arguments
    }

    /// Queues the launch; an empty grid (no rows or no keys) launches nothing.
    func enqueue(on stream: CUDAStream? = nil) throws {
        guard grid.x > 0, grid.y > 0, grid.z > 0 else { return }
        try function.launch(
            grid: grid, block: (block, 1, 1), sharedMemory: sharedMemory, stream: stream, arguments: arguments)
    }
}
