import CFlexAttention
import FlexAttention

/// A tensor a call made: host memory from the CPU, device memory (stream-ordered on the call's stream) from CUDA.
enum ProducedTensor {
    case host(Tensor)
    case device(DeviceTensor)
}

/// What a backward pass made, with the table gradients in `fa_attention_gradient_table_name` order.
struct ProducedGradients {
    let query: ProducedTensor
    let key: ProducedTensor
    let value: ProducedTensor
    let tables: [ProducedTensor]
    let sink: ProducedTensor?
}

/// New values for a score mod's Float table, given to one call.
struct TableValues {
    let name: String
    let values: DLPackArgument
}

/// The calls of a prepared attention on one device, on arguments already checked against its shape.
protocol AttentionEngine: Sendable {
    func forward(query: DLPackArgument, key: DLPackArgument, value: DLPackArgument, tables: [TableValues],
                 stream: UnsafeMutableRawPointer?) throws -> (output: ProducedTensor, logSumExp: ProducedTensor)
    func forward(query: DLPackArgument, key: DLPackArgument, value: DLPackArgument, tables: [TableValues],
                 into output: DLPackArgument, logSumExp: DLPackArgument, stream: UnsafeMutableRawPointer?) throws
    func backward(query: DLPackArgument, key: DLPackArgument, value: DLPackArgument, output: DLPackArgument,
                  logSumExp: DLPackArgument, outputGradient: DLPackArgument, tables: [TableValues],
                  stream: UnsafeMutableRawPointer?) throws -> ProducedGradients
}

/// What an `fa_attention *` points at: one attention problem prepared on its device, and the checks every call
/// makes before it reaches the engine.
final class PreparedAttention: Sendable {
    let shape: AttentionShape
    let includesBackward: Bool
    let hasSinks: Bool
    /// The score mod's Float tables (names and shapes; values may change per call), in gradient order.
    let gradientTables: [(name: String, shape: [Int])]
    let gradientTableNames: [OwnedCString]
    let engine: any AttentionEngine

    init(_ description: AttentionDescription) throws {
        shape = description.shape
        includesBackward = description.includesBackward
        hasSinks = description.sinks != nil
        gradientTables = description.gradientTables.map { ($0.name, $0.shape) }
        gradientTableNames = try gradientTables.map { try OwnedCString($0.name) }
        engine = switch description.device {
        case .cpu: try HostAttention(description)
        case .cuda(let ordinal): try DeviceAttention(description, device: SharedDevice.open(ordinal))
        }
    }

    /// Q, K and V, read and checked against the prepared shape and dtype.
    func inputs(_ query: UnsafePointer<DLTensor>?, _ key: UnsafePointer<DLTensor>?, _ value: UnsafePointer<DLTensor>?)
        throws -> (DLPackArgument, DLPackArgument, DLPackArgument)
    {
        (try argument(query, "query", shape.queryShape), try argument(key, "key", shape.keyShape),
         try argument(value, "value", shape.valueShape))
    }

    /// O or dO, read and checked: `[B, Hq, Sq, Dv]` in the inputs' dtype.
    func outputShaped(_ pointer: UnsafePointer<DLTensor>?, named name: String) throws -> DLPackArgument {
        try argument(pointer, name, shape.outputShape)
    }

    /// A log-sum-exp, read and checked: contiguous Float32 `[B, Hq, Sq]`.
    func logSumExp(_ pointer: UnsafePointer<DLTensor>?) throws -> DLPackArgument {
        let lse = try argument(pointer, "log_sum_exp", shape.logSumExpShape, dtype: .float32)
        let compact = [shape.queryHeads * shape.queryLength, shape.queryLength, 1]
        guard lse.isEmpty || lse.strides == compact else {
            throw BridgeError.invalid("log_sum_exp must be contiguous (strides \(compact)), not strides \(lse.strides)")
        }
        return lse
    }

    /// The `fa_table` array of a call: names of the score mod's Float tables, each at most once, with Float32
    /// values of the table's shape.
    func tableValues(_ pointer: UnsafePointer<fa_table>?, count: Int64) throws -> [TableValues] {
        let tables = try cArray(pointer, count: count, named: "tables").map { table in
            let name = try string(table.name, named: "a name in tables")
            guard let expected = gradientTables.first(where: { $0.name == name })?.shape else {
                throw BridgeError.invalid(
                    "\(name) is not a Float table of the score mod (those are \(gradientTables.map(\.name)))")
            }
            let values = try DLPackArgument(table.values, name: "table \(name)", ranks: 1...3)
            guard values.shape == expected, values.element == .float(.float32) else {
                throw BridgeError.invalid(
                    "table \(name) takes float32 values of shape \(expected), not \(values.element) of shape \(values.shape)")
            }
            return TableValues(name: name, values: values)
        }
        if let name = firstDuplicate(tables.map(\.name)) {
            throw BridgeError.invalid("tables names \(name) twice")
        }
        return tables
    }

    private func argument(
        _ pointer: UnsafePointer<DLTensor>?, _ name: String, _ expected: [Int], dtype: DType? = nil
    ) throws -> DLPackArgument {
        let argument = try DLPackArgument(pointer, name: name, ranks: expected.count...expected.count)
        guard argument.shape == expected else {
            throw BridgeError.invalid("\(name) has shape \(argument.shape); the attention was prepared for \(expected)")
        }
        let dtype = dtype ?? shape.dtype
        guard try argument.floatType() == dtype else {
            throw BridgeError.invalid("\(name) is \(try argument.floatType()); the attention takes \(dtype)")
        }
        return argument
    }
}
