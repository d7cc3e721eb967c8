import CFlexAttention
import FlexAttention

/// An `fa_mod`, read: its text (nil for none) and the tables and parameters the text may name.
struct ModArgument {
    let text: String?
    let tables: [ModTable]
    let parameters: [String: ModScalar]

    /// Reads `mod`, named `role` in messages (`score_mod`, `mask_mod`). A device table is copied to the host after
    /// waiting for its device's work.
    /// - Throws: ``BridgeError`` for NULL arrays with counts, negative counts, names given twice, an unknown scalar
    ///   kind or a table that is not an integer or float tensor of 1 to 3 dimensions; ``ModError`` for a table the
    ///   library refuses (an empty one, Int64 values past Int32).
    init(_ mod: fa_mod, role: String) throws {
        let text = try mod.text.map { try string($0, named: "\(role).text") }
        guard let text, !text.isEmpty else {
            (self.text, tables, parameters) = (nil, [], [:])
            return
        }
        self.text = text
        tables = try cArray(mod.tables, count: mod.table_count, named: "\(role).tables").map { table in
            let name = try string(table.name, named: "a name in \(role).tables")
            return try Self.table(name: name, values: DLPackArgument(table.values, name: "table \(name)", ranks: 1...3))
        }
        var parameters: [String: ModScalar] = [:]
        for parameter in try cArray(mod.parameters, count: mod.parameter_count, named: "\(role).parameters") {
            let name = try string(parameter.name, named: "a name in \(role).parameters")
            guard parameters[name] == nil else { throw BridgeError.invalid("\(role) has two parameters named \(name)") }
            parameters[name] = switch parameter.kind {
            case Int32(FA_SCALAR_INT.rawValue): .int(Int(parameter.int_value))
            case Int32(FA_SCALAR_FLOAT.rawValue): .float(Float(parameter.float_value))
            default: throw BridgeError.invalid("parameter \(name) has kind \(parameter.kind), not FA_SCALAR_INT or FA_SCALAR_FLOAT")
            }
        }
        self.parameters = parameters
        if let name = firstDuplicate(tables.map(\.name)) {
            throw BridgeError.invalid("\(role) has two tables named \(name)")
        }
    }

    init(text: String?, tables: [ModTable], parameters: [String: ModScalar]) {
        (self.text, self.tables, self.parameters) = (text, tables, parameters)
    }

    /// The mask the text describes; nil without text.
    func mask() throws -> MaskMod? {
        try text.map { try MaskMod(parsing: $0, tables: tables, parameters: parameters) }
    }

    /// The score mod the text describes; nil without text.
    func scoreMod() throws -> ScoreMod? {
        try text.map { try ScoreMod(parsing: $0, tables: tables, parameters: parameters) }
    }

    /// A mod table of `values`' elements: integers make an Int table, floats a Float table.
    static func table(name: String, values: DLPackArgument) throws -> ModTable {
        switch values.element {
        case .int32, .int64: try ModTable(name: name, shape: values.shape, int64: values.integers())
        case .float: try ModTable(name: name, shape: values.shape, elements: .float(values.floats()))
        }
    }
}
