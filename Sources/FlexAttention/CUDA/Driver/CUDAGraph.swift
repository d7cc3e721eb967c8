import Synchronization

/// Work captured once from a stream and replayed with one launch: a CUDA graph, instantiated.
///
/// Replaying a graph costs one driver call however many kernels, copies and stream-ordered allocations it holds,
/// so a sequence of small launches (an attention call with its scratch buffers, say) loses its per-launch CPU
/// overhead.
///
/// A graph records device addresses, not Swift objects. The graph keeps alive the buffers that ``AttentionPlan``
/// calls captured in it read and write (Swift may release a variable after its last use, which would otherwise free
/// memory the graph writes); buffers that other captured work uses (copies and fills the caller queues) the caller
/// keeps alive for as long as the graph may be launched. Stream-ordered buffers made and dropped inside the capture
/// need neither: the graph allocates and frees them itself on each launch.
public final class CUDAGraph: Sendable {
    /// The device whose streams the graph runs on.
    public let device: CUDADevice
    private let address: UInt  // the CUgraphExec, kept as an integer so the class is Sendable
    /// What captured calls asked the graph to keep alive.
    private let retained: [any Sendable]

    private init(device: CUDADevice, address: UInt, retained: [any Sendable]) {
        self.device = device
        self.address = address
        self.retained = retained
    }

    /// Objects calls made during the current capture on this task or thread ask the graph to keep; nil outside one.
    @TaskLocal private static var capturing: CaptureRetainer?

    /// Keeps `objects` alive for as long as the graph being captured on this thread, if any, lives.
    static func retainIfCapturing(_ objects: @autoclosure () -> [any Sendable]) {
        capturing?.append(objects())
    }

    /// Records the work `body` queues on `stream`, without running it, and instantiates it as a graph.
    ///
    /// Capture uses `CU_STREAM_CAPTURE_MODE_THREAD_LOCAL`: `body` runs on the calling thread, where calls the
    /// driver deems unsafe during a capture (a synchronous allocation such as ``DeviceBuffer/init(device:byteCount:)``,
    /// for one) fail with a ``CUDAError`` instead of silently escaping the graph; other threads, which may belong to
    /// other libraries, are not restricted. Work queued on `stream` from other threads during the capture joins
    /// the graph all the same.
    ///
    /// The graph is instantiated with `CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH`, so a graph whose
    /// stream-ordered allocations are not all freed inside it can still be launched again: each launch first frees
    /// what the previous one left allocated.
    ///
    /// - Throws: `body`'s own error, after the capture is ended and its partial graph discarded, so `stream` is
    ///   usable again; otherwise a ``CUDAError`` when capture cannot begin (the legacy default stream, a stream
    ///   already capturing), was invalidated by an uncapturable call, or the graph cannot be instantiated.
    public static func capture(on stream: CUDAStream, _ body: () throws -> Void) throws -> CUDAGraph {
        let device = stream.device
        let api = device.api
        try device.bind()
        try api.check(
            api.cuStreamBeginCapture(stream.handle, 1), "cuStreamBeginCapture(CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)")
        var bodyError: (any Error)?
        let retainer = CaptureRetainer()
        do {
            try $capturing.withValue(retainer) { try body() }
        } catch {
            bodyError = error
        }
        // Capture must end whatever happened, or the stream stays capturing; `body` may have bound another context.
        _ = try? device.bind()
        var graph: CUgraph?
        let ended = api.cuStreamEndCapture(stream.handle, &graph)
        defer { if let graph { _ = api.cuGraphDestroy(graph) } }  // the executable graph does not need it
        if let bodyError { throw bodyError }
        try api.check(ended, "cuStreamEndCapture")
        guard let graph else {
            throw CUDAError.invalidArgument("cuStreamEndCapture returned no graph for a capture it reported complete")
        }
        var executable: CUgraphExec?
        try api.check(
            api.cuGraphInstantiateWithFlags(&executable, graph, 1),
            "cuGraphInstantiateWithFlags(CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH)")
        return CUDAGraph(device: device, address: UInt(bitPattern: executable), retained: retainer.objects)
    }

    /// Queues the whole graph on `stream`; it runs after the work queued there before, and the work queued after
    /// waits for it. Launches of one graph run one at a time, in the order queued, even on different streams.
    /// - Throws: ``CUDAError/invalidArgument(_:)`` when `stream` belongs to another device; other ``CUDAError``s
    ///   when the driver refuses the launch.
    public func launch(on stream: CUDAStream) throws {
        guard stream.device === device else {
            throw CUDAError.invalidArgument(
                "cannot launch a graph of device \(device.ordinal) on a stream of device \(stream.device.ordinal)")
        }
        try device.bind()
        try device.api.check(device.api.cuGraphLaunch(CUgraphExec(bitPattern: address), stream.handle), "cuGraphLaunch")
    }

    deinit {
        // The driver defers destroying a graph still running until it completes. Memory a launch left allocated
        // stays allocated, as graph destruction never frees it.
        if (try? device.bind()) != nil { _ = device.api.cuGraphExecDestroy(CUgraphExec(bitPattern: address)) }
    }
}

/// The objects one capture's calls asked to keep, gathered under a lock (a capture's body may hand work to threads).
private final class CaptureRetainer: Sendable {
    private let gathered = Mutex<[any Sendable]>([])

    func append(_ objects: [any Sendable]) {
        gathered.withLock { $0 += objects }
    }

    var objects: [any Sendable] { gathered.withLock { $0 } }
}
