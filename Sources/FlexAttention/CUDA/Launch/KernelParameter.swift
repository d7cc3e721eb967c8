/// One parameter of a generated kernel: how its C signature declares it and where a launch takes its value from.
/// A kernel's signature and a launcher's argument list are both rendered from one list of these, so the two cannot
/// disagree in order or count, and the helpers below tie each C type to the argument case it is passed as.
struct KernelParameter<Values>: Sendable {
    /// The C declaration, e.g. `const fa_u16* __restrict__ Q`.
    let declaration: String
    /// The value passed for it.
    let argument: @Sendable (Values) -> KernelArgument
    /// Whether `argument` is passed the way `declaration` is read (checked by tests, without a GPU).
    let accepts: @Sendable (KernelArgument) -> Bool

    /// A device pointer to `element`s, `const` when the kernel only reads them; `restricted` when nothing else the
    /// kernel reads aliases them (`__restrict__`).
    static func pointer(
        _ name: String, _ element: String, readOnly: Bool = true, restricted: Bool = true,
        _ value: @escaping @Sendable (Values) -> UInt64
    ) -> Self {
        Self(declaration: "\(readOnly ? "const " : "")\(element)*\(restricted ? " __restrict__" : "") \(name)",
             argument: { .pointer(value($0)) }, accepts: \.isPointer)
    }

    static func int32(_ name: String, _ value: @escaping @Sendable (Values) -> Int) -> Self {
        Self(declaration: "int \(name)", argument: { .int32(Int32(truncatingIfNeeded: value($0))) }, accepts: \.isInt32)
    }

    static func int64(_ name: String, _ value: @escaping @Sendable (Values) -> Int) -> Self {
        Self(declaration: "long long \(name)", argument: { .int64(Int64(value($0))) }, accepts: \.isInt64)
    }

    static func float32(_ name: String, _ value: @escaping @Sendable (Values) -> Float) -> Self {
        Self(declaration: "float \(name)", argument: { .float32(value($0)) }, accepts: \.isFloat32)
    }

    /// A TMA descriptor passed by value.
    static func tensorMap(_ name: String, _ value: @escaping @Sendable (Values) -> CUDATensorMap) -> Self {
        Self(declaration: "const __grid_constant__ fa_tensor_map \(name)", argument: { .tensorMap(value($0)) },
             accepts: \.isTensorMap)
    }

    /// `prefix0 … prefix3`: the four strides of a `[B, H, S, D]` view.
    static func strides(_ prefix: String, _ value: @escaping @Sendable (Values) -> [Int]) -> [Self] {
        (0..<4).map { axis in int64("\(prefix)\(axis)") { value($0)[axis] } }
    }
}

/// A kernel's parameter list: its C signature and, for given values, its arguments.
struct KernelSignature<Values>: Sendable {
    let parameters: [KernelParameter<Values>]

    init(_ parameters: [KernelParameter<Values>]) {
        self.parameters = parameters
    }

    /// The parameters as the kernel's C signature declares them, between its parentheses.
    var declaration: String {
        parameters.map(\.declaration).joined(separator: ",\n    ")
    }

    /// The launch arguments, in the signature's order.
    func arguments(_ values: Values) -> [KernelArgument] {
        parameters.map { $0.argument(values) }
    }
}

extension KernelArgument {
    var isPointer: Bool {
        switch self {
        case .pointer, .buffer: true
        default: false
        }
    }

    var isInt32: Bool { if case .int32 = self { true } else { false } }
    var isInt64: Bool { if case .int64 = self { true } else { false } }
    var isFloat32: Bool { if case .float32 = self { true } else { false } }
    var isTensorMap: Bool { if case .tensorMap = self { true } else { false } }
}
