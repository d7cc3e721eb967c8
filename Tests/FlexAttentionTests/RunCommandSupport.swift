@testable import FlexAttention
import Foundation

/// The `flexattn` executable built with the tests: beside the test bundle (any scratch path), else in the default
/// `.build/debug`; `FLEXATTN_EXECUTABLE` overrides both.
let flexattnExecutable: URL? = {
    var candidates: [URL] = []
    if let path = ProcessInfo.processInfo.environment["FLEXATTN_EXECUTABLE"] {
        candidates.append(URL(fileURLWithPath: path))
    }
    if let bundle = Bundle.main.executableURL {
        candidates.append(bundle.deletingLastPathComponent().appendingPathComponent("flexattn"))
    }
    let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    candidates.append(packageRoot.appendingPathComponent(".build/debug/flexattn"))
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
}()

/// What one run of `flexattn` did.
struct CommandResult {
    let status: Int32
    let standardError: String
}

/// A temporary folder for one test's files, removed when the test is done with it.
final class ScratchFolder {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("flexattn-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func write(_ array: NumPyArray, to name: String) throws {
        try write(array.encoded(), to: name)
    }

    func write(_ bytes: [UInt8], to name: String) throws {
        try Data(bytes).write(to: url.appendingPathComponent(name))
    }

    func write(_ tensor: Tensor, to name: String) throws {
        let values = tensor.floats()
        let elements: NumPyArray.Elements = tensor.dtype == .float16 ? .float16(values.map(Float16.init)) : .float32(values)
        try write(NumPyArray(shape: tensor.shape, elements: elements).encoded(), to: name)
    }

    func read(_ name: String) throws -> NumPyArray {
        try NumPyArray(contentsOfFile: url.appendingPathComponent(name).path)
    }

    /// The names in the folder, temporary files included.
    func names() throws -> Set<String> {
        Set(try FileManager.default.contentsOfDirectory(atPath: url.path))
    }

    /// Runs `flexattn run` (or another `command`) with `arguments` in this folder.
    func run(_ arguments: [String], command: String = "run") throws -> CommandResult {
        guard let flexattnExecutable else { throw CocoaError(.fileNoSuchFile) }
        let process = Process()
        process.executableURL = flexattnExecutable
        process.arguments = [command] + arguments
        process.currentDirectoryURL = url
        let errorPipe = Pipe()
        process.standardError = errorPipe
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let errorData = errorPipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus, standardError: String(decoding: errorData, as: UTF8.self))
    }
}

/// The float32 elements of an output array, or nothing when it is not `<f4` of `shape`.
func floats(_ array: NumPyArray, shape: [Int]) -> [Float] {
    guard array.shape == shape, case .float32(let values) = array.elements else { return [] }
    return values
}
