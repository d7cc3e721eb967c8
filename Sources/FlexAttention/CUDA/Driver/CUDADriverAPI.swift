/// Handles of the CUDA driver API, as the C declarations spell them.
typealias CUresult = Int32
typealias CUdevice = Int32
typealias CUdeviceptr = UInt64
typealias CUcontext = OpaquePointer
typealias CUmodule = OpaquePointer
typealias CUfunction = OpaquePointer
typealias CUstream = OpaquePointer
typealias CUevent = OpaquePointer
typealias CUgraph = OpaquePointer
typealias CUgraphExec = OpaquePointer
typealias CUmemoryPool = OpaquePointer

/// The driver functions the library calls, resolved once from `libcuda.so.1` with `dlsym`. Versioned names (`_v2`)
/// are the ones the CUDA 12 and 13 headers bind to.
struct CUDADriverAPI: @unchecked Sendable {  // immutable C function pointers
    let library: DynamicLibrary
    let cuInit: @convention(c) (UInt32) -> CUresult
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuGetErrorName: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult
    let cuGetErrorString: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<CUdevice>, Int32) -> CUresult
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, CUdevice) -> CUresult
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, CUdevice) -> CUresult
    let cuDeviceTotalMem: @convention(c) (UnsafeMutablePointer<Int>, CUdevice) -> CUresult
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<CUcontext?>, CUdevice) -> CUresult
    let cuCtxSetCurrent: @convention(c) (CUcontext?) -> CUresult
    let cuCtxSynchronize: @convention(c) () -> CUresult
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> CUresult
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<CUdeviceptr>, Int) -> CUresult
    let cuMemFree: @convention(c) (CUdeviceptr) -> CUresult
    let cuMemcpyHtoD: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int) -> CUresult
    let cuMemcpyDtoH: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int) -> CUresult
    let cuMemcpyDtoD: @convention(c) (CUdeviceptr, CUdeviceptr, Int) -> CUresult
    let cuMemcpyHtoDAsync: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int, CUstream?) -> CUresult
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int, CUstream?) -> CUresult
    let cuMemcpyDtoDAsync: @convention(c) (CUdeviceptr, CUdeviceptr, Int, CUstream?) -> CUresult
    /// Takes a `CUDA_MEMCPY2D`, which `DeviceBuffer.copyRows` lays out.
    let cuMemcpy2DAsync: @convention(c) (UnsafeRawPointer?, CUstream?) -> CUresult
    let cuMemsetD8: @convention(c) (CUdeviceptr, UInt8, Int) -> CUresult
    let cuMemsetD8Async: @convention(c) (CUdeviceptr, UInt8, Int, CUstream?) -> CUresult
    let cuMemsetD32Async: @convention(c) (CUdeviceptr, UInt32, Int, CUstream?) -> CUresult
    let cuMemAllocAsync: @convention(c) (UnsafeMutablePointer<CUdeviceptr>, Int, CUstream?) -> CUresult
    let cuMemFreeAsync: @convention(c) (CUdeviceptr, CUstream?) -> CUresult
    let cuDeviceGetDefaultMemPool: @convention(c) (UnsafeMutablePointer<CUmemoryPool?>, CUdevice) -> CUresult
    /// `(pool, CUmemPool_attribute, value)`: the value's type depends on the attribute.
    let cuMemPoolSetAttribute: @convention(c) (CUmemoryPool?, Int32, UnsafeMutableRawPointer?) -> CUresult
    let cuMemPoolTrimTo: @convention(c) (CUmemoryPool?, Int) -> CUresult
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<CUstream?>, UInt32) -> CUresult
    let cuStreamCreateWithPriority: @convention(c) (UnsafeMutablePointer<CUstream?>, UInt32, Int32) -> CUresult
    let cuCtxGetStreamPriorityRange: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> CUresult
    let cuStreamDestroy: @convention(c) (CUstream?) -> CUresult
    let cuStreamSynchronize: @convention(c) (CUstream?) -> CUresult
    let cuStreamWaitEvent: @convention(c) (CUstream?, CUevent?, UInt32) -> CUresult
    let cuStreamBeginCapture: @convention(c) (CUstream?, UInt32) -> CUresult  // mode: CUstreamCaptureMode
    let cuStreamEndCapture: @convention(c) (CUstream?, UnsafeMutablePointer<CUgraph?>) -> CUresult
    let cuGraphInstantiateWithFlags: @convention(c) (UnsafeMutablePointer<CUgraphExec?>, CUgraph?, UInt64) -> CUresult
    let cuGraphLaunch: @convention(c) (CUgraphExec?, CUstream?) -> CUresult
    let cuGraphDestroy: @convention(c) (CUgraph?) -> CUresult
    let cuGraphExecDestroy: @convention(c) (CUgraphExec?) -> CUresult
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<CUevent?>, UInt32) -> CUresult
    let cuEventDestroy: @convention(c) (CUevent?) -> CUresult
    let cuEventRecord: @convention(c) (CUevent?, CUstream?) -> CUresult
    let cuEventSynchronize: @convention(c) (CUevent?) -> CUresult
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, CUevent?, CUevent?) -> CUresult
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<CUmodule?>, UnsafeRawPointer) -> CUresult
    let cuModuleUnload: @convention(c) (CUmodule?) -> CUresult
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<CUfunction?>, CUmodule?, UnsafePointer<CChar>)
        -> CUresult
    let cuFuncGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, CUfunction?) -> CUresult
    let cuFuncSetAttribute: @convention(c) (CUfunction?, Int32, Int32) -> CUresult
    let cuOccupancyMaxActiveBlocksPerMultiprocessor: @convention(c) (UnsafeMutablePointer<Int32>, CUfunction?, Int32, Int)
        -> CUresult
    /// Absent from drivers older than CUDA 12; only the Hopper kernels need it.
    let cuTensorMapEncodeTiled: (@convention(c) (
        UnsafeMutableRawPointer, UInt32, UInt32, UnsafeMutableRawPointer?, UnsafePointer<UInt64>, UnsafePointer<UInt64>,
        UnsafePointer<UInt32>, UnsafePointer<UInt32>, UInt32, UInt32, UInt32, UInt32
    ) -> CUresult)?
    let cuLaunchKernel: @convention(c) (
        CUfunction?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, CUstream?,
        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    ) -> CUresult
    /// Takes a `CUlaunchConfig` (``ProgrammaticLaunch`` lays one out). Left nil below CUDA 12.3, the first driver
    /// whose graphs capture a programmatic launch; launches then fall back to ``cuLaunchKernel``.
    let cuLaunchKernelEx: (@convention(c) (
        UnsafeRawPointer?, CUfunction?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
        UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    ) -> CUresult)?

    init(library: DynamicLibrary) throws {
        self.library = library
        cuInit = try library.function("cuInit")
        cuDriverGetVersion = try library.function("cuDriverGetVersion")
        cuGetErrorName = try library.function("cuGetErrorName")
        cuGetErrorString = try library.function("cuGetErrorString")
        cuDeviceGetCount = try library.function("cuDeviceGetCount")
        cuDeviceGet = try library.function("cuDeviceGet")
        cuDeviceGetName = try library.function("cuDeviceGetName")
        cuDeviceGetAttribute = try library.function("cuDeviceGetAttribute")
        cuDeviceTotalMem = try library.function("cuDeviceTotalMem_v2")
        cuDevicePrimaryCtxRetain = try library.function("cuDevicePrimaryCtxRetain")
        cuCtxSetCurrent = try library.function("cuCtxSetCurrent")
        cuCtxSynchronize = try library.function("cuCtxSynchronize")
        cuMemGetInfo = try library.function("cuMemGetInfo_v2")
        cuMemAlloc = try library.function("cuMemAlloc_v2")
        cuMemFree = try library.function("cuMemFree_v2")
        cuMemcpyHtoD = try library.function("cuMemcpyHtoD_v2")
        cuMemcpyDtoH = try library.function("cuMemcpyDtoH_v2")
        cuMemcpyDtoD = try library.function("cuMemcpyDtoD_v2")
        cuMemcpyHtoDAsync = try library.function("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = try library.function("cuMemcpyDtoHAsync_v2")
        cuMemcpyDtoDAsync = try library.function("cuMemcpyDtoDAsync_v2")
        cuMemcpy2DAsync = try library.function("cuMemcpy2DAsync_v2")
        cuMemsetD8 = try library.function("cuMemsetD8_v2")
        cuMemsetD8Async = try library.function("cuMemsetD8Async")
        cuMemsetD32Async = try library.function("cuMemsetD32Async")
        // Required, unlike cuTensorMapEncodeTiled: stream-ordered allocation dates from CUDA 11.2 and
        // cuGraphInstantiateWithFlags from 11.4, older than the CUDA 12 and 13 drivers the library is used with.
        cuMemAllocAsync = try library.function("cuMemAllocAsync")
        cuMemFreeAsync = try library.function("cuMemFreeAsync")
        cuDeviceGetDefaultMemPool = try library.function("cuDeviceGetDefaultMemPool")
        cuMemPoolSetAttribute = try library.function("cuMemPoolSetAttribute")
        cuMemPoolTrimTo = try library.function("cuMemPoolTrimTo")
        cuStreamCreate = try library.function("cuStreamCreate")
        cuStreamCreateWithPriority = try library.function("cuStreamCreateWithPriority")
        cuCtxGetStreamPriorityRange = try library.function("cuCtxGetStreamPriorityRange")
        cuStreamDestroy = try library.function("cuStreamDestroy_v2")
        cuStreamSynchronize = try library.function("cuStreamSynchronize")
        cuStreamWaitEvent = try library.function("cuStreamWaitEvent")
        cuStreamBeginCapture = try library.function("cuStreamBeginCapture_v2")
        cuStreamEndCapture = try library.function("cuStreamEndCapture")
        cuGraphInstantiateWithFlags = try library.function("cuGraphInstantiateWithFlags")
        cuGraphLaunch = try library.function("cuGraphLaunch")
        cuGraphDestroy = try library.function("cuGraphDestroy")
        cuGraphExecDestroy = try library.function("cuGraphExecDestroy")
        cuEventCreate = try library.function("cuEventCreate")
        cuEventDestroy = try library.function("cuEventDestroy_v2")
        cuEventRecord = try library.function("cuEventRecord")
        cuEventSynchronize = try library.function("cuEventSynchronize")
        cuEventElapsedTime = try library.function("cuEventElapsedTime")
        cuModuleLoadData = try library.function("cuModuleLoadData")
        cuModuleUnload = try library.function("cuModuleUnload")
        cuModuleGetFunction = try library.function("cuModuleGetFunction")
        cuFuncGetAttribute = try library.function("cuFuncGetAttribute")
        cuFuncSetAttribute = try library.function("cuFuncSetAttribute")
        cuOccupancyMaxActiveBlocksPerMultiprocessor = try library.function("cuOccupancyMaxActiveBlocksPerMultiprocessor")
        cuLaunchKernel = try library.function("cuLaunchKernel")
        var version: Int32 = 0
        cuLaunchKernelEx = cuDriverGetVersion(&version) == 0 && version >= 12030
            ? try? library.function("cuLaunchKernelEx") : nil
        cuTensorMapEncodeTiled = try? library.function("cuTensorMapEncodeTiled")
    }

    /// Throws ``CUDAError`` for a failed call, with the driver's error name and text.
    func check(_ result: CUresult, _ call: @autoclosure () -> String) throws {
        guard result != 0 else { return }
        throw CUDAError.driver(call: call(), code: result, name: errorName(result), message: errorText(result))
    }

    func errorName(_ result: CUresult) -> String {
        var text: UnsafePointer<CChar>?
        guard cuGetErrorName(result, &text) == 0, let text else { return "CUDA_ERROR_UNKNOWN_CODE" }
        return String(cString: text)
    }

    func errorText(_ result: CUresult) -> String {
        var text: UnsafePointer<CChar>?
        guard cuGetErrorString(result, &text) == 0, let text else { return "unrecognised error code" }
        return String(cString: text)
    }
}
