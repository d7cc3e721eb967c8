/// A mask or score mod as a CUDA device function whose constants and tables are run-time arguments.
///
/// The function reads every literal, parameter and table through a `fa_mod_arguments` (``CUDAModArguments`` uploads
/// them), so two mods with one ``ModExpression/structuralKey`` emit the same text: a new window size or a new
/// table reuses the compiled kernel. Shared subexpressions are computed once, as in ``ModProgram``.
///
/// Everything that reads neither `q`, `kv` nor `score` (arguments, table extents and pointers, lookups at such
/// indices such as ALiBi's slope per head, arithmetic on them) is computed once per head by
/// `NAME_prepared NAME_prepare(long long b, h, q_len, kv_len, fa_mod_arguments m)`, and the per-score functions
/// read it from that struct: in the kernels those reads were global loads repeated for every score, since the
/// compiler may not keep them across the asynchronous and atomic instructions between scores.
///
/// - Mask: `bool NAME(long long b, h, q, kv, q_len, kv_len, const NAME_prepared& p)`.
/// - Score mod: `float NAME(float score, long long b, h, q, kv, q_len, kv_len, const NAME_prepared& p, float*
///   slope)`, which also writes ∂value/∂score to `*slope` when `slope` is not null.
struct CUDAModFunction: Sendable {
    enum Kind: String, Sendable {
        case mask, score
    }

    let kind: Kind
    let name: String
    /// The prepared struct, its `NAME_prepare` and the device function (needs ``CUDAPrelude`` and ``CUDAModPrelude``
    /// before it).
    let definition: String
    /// The values to upload: ``ModArguments`` of the mod.
    let arguments: ModArguments
    /// For a score mod that reads Float tables, three definitions: `struct NAME_table_pending` (per lookup, the
    /// element and the sum not yet added; start it with `NAME_table_pending_start()`), `void NAME_table_gradients(float
    /// score, indices…, const NAME_prepared& p, float upstream, const fa_u64* gradients, NAME_table_pending& pending)`,
    /// which adds `upstream · ∂value/∂table[i]` for every Float lookup, and `NAME_table_gradients_flush(gradients,
    /// pending)`. A lookup's sum goes to element `i` of the fixed-point slots at `gradients[slot]`
    /// (``TableGradientSum``: order-independent, so deterministic) only when its element changes (and at the
    /// flush): a table read at one element by a whole tile costs one addition per thread instead of one
    /// per score. A lookup whose element the head fixes (ALiBi's slope) only adds to its sum, so callers flush
    /// before `b` or `h` changes (the dQ kernels own one head). Nil for other mods.
    let tableGradientDefinition: String?

    init(mask: MaskMod, name: String = "fa_mask") {
        self.init(kind: .mask, expression: mask.expression, name: name)
    }

    /// - Parameter includesGradients: whether to emit the derivatives backward needs (`*slope` and the table
    ///   gradients); a forward kernel passes a null `slope` and needs neither.
    init(scoreMod: ScoreMod, name: String = "fa_score_mod", includesGradients: Bool = true) {
        self.init(kind: .score, expression: scoreMod.expression, name: name, includesGradients: includesGradients)
    }

    private init(kind: Kind, expression: ModExpression, name: String, includesGradients: Bool = false) {
        self.kind = kind
        self.name = name
        arguments = expression.arguments
        var lifter = ArgumentLifter(tables: arguments.tables)
        let value = lifter.lift(expression.node)
        var emitter = CUDAModStatements(tables: arguments.tables, tableExtents: lifter.intCount)
        let result = emitter.emit(value)
        let indices = "long long b, long long h, long long q, long long kv, long long q_len, long long kv_len"
        let function: String
        switch kind {
        case .mask:
            function = """
                FA_INLINE bool \(name)(\(indices), const \(name)_prepared& p) {
                \(emitter.body)    return \(result);
                }

                """
        case .score:
            let slope = includesGradients ? emitter.emit(value.derivative(withRespectTo: .variable(.score)).node) : nil
            function = """
                FA_INLINE float \(name)(float score, \(indices), const \(name)_prepared& p, float* slope) {
                \(emitter.body)\(slope.map { "    if (slope) *slope = \($0);\n" } ?? "")    return \(result);
                }

                """
        }
        var prepared = emitter.prepared
        tableGradientDefinition = includesGradients && !value.floatLookups.isEmpty
            ? Self.tableGradients(of: value, name: name, indices: indices, tables: arguments.tables,
                                  tableExtents: lifter.intCount, prepared: &prepared)
            : nil
        definition = prepared.definition(name: name) + function
    }
}

extension CUDAModFunction {
    /// The table gradients' definitions; the per-head values they need join `prepared`.
    private static func tableGradients(
        of value: ModNode, name: String, indices: String, tables: [ModTable], tableExtents: Int,
        prepared: inout PreparedStatements
    ) -> String {
        var emitter = CUDAModStatements(tables: tables, tableExtents: tableExtents, prepared: prepared)
        defer { prepared = emitter.prepared }
        var updates = "", flushes = ""
        let lookups = value.floatLookups
        for (index, lookup) in lookups.enumerated() {
            guard case .lookup(let table, let lookupIndices) = lookup.operation else { continue }
            let slope = emitter.emit(value.derivative(withRespectTo: lookup).node)
            let offset = emitter.offset(in: table, lookupIndices.map { emitter.emit($0) })
            let words = TableGradientSum.slotBytes / 8
            let target = "(long long*)gradients[\(tables.firstIndex(of: table) ?? 0)] + \(words) * pending.element[\(index)]"
            flushes += "    if (pending.element[\(index)] >= 0) fa_table_gradient_add(\(target), pending.sum[\(index)]);\n"
            guard !lookup.isPerHead else {
                updates += """
                        pending.element[\(index)] = \(emitter.perHead(offset, type: "long long"));
                        pending.sum[\(index)] += upstream * \(slope);

                    """
                continue
            }
            updates += """
                    const long long element\(index) = \(offset);
                    if (element\(index) != pending.element[\(index)]) {
                        if (pending.element[\(index)] >= 0) fa_table_gradient_add(\(target), pending.sum[\(index)]);
                        pending.element[\(index)] = element\(index);
                        pending.sum[\(index)] = 0.0f;
                    }
                    pending.sum[\(index)] += upstream * \(slope);

                """
        }
        return TableGradientSum.deviceFunction + """
            struct \(name)_table_pending { long long element[\(lookups.count)]; float sum[\(lookups.count)]; };
            FA_INLINE \(name)_table_pending \(name)_table_pending_start() {
                \(name)_table_pending pending;
                for (int i = 0; i < \(lookups.count); ++i) { pending.element[i] = -1; pending.sum[i] = 0.0f; }
                return pending;
            }
            FA_INLINE void \(name)_table_gradients(float score, \(indices), const \(name)_prepared& p, float upstream,
                                                   const fa_u64* gradients, \(name)_table_pending& pending) {
                if (upstream == 0.0f) return;
            \(emitter.body)\(updates)}
            FA_INLINE void \(name)_table_gradients_flush(const fa_u64* gradients, \(name)_table_pending& pending) {
            \(flushes)}

            """
    }
}

/// Replaces each literal and parameter by a placeholder for its argument slot, in the order of
/// ``ModExpression/arguments``: Int slot `k` becomes `.int(k)`, Float slot `k` becomes `float(.int(−1 − k))`. Both
/// are unique per slot (so sharing subexpressions never merges two slots that only happen to hold one value) and
/// constant to differentiation; Float literals left after it are the derivative's own 0, 1 and 2, fixed by the
/// structure.
private struct ArgumentLifter {
    let tables: [ModTable]
    private(set) var intCount = 0
    private var floatCount = 0

    init(tables: [ModTable]) { self.tables = tables }

    mutating func lift(_ node: ModNode) -> ModNode {
        node.rebuilt { node, operands in
            switch node.operation {
            case .int: intSlot()
            case .float: floatSlot()
            case .parameter(let parameter): parameter.value.type == .int ? intSlot() : floatSlot()
            default: node.withChildren(operands)
            }
        }
    }

    // `rebuilt` visits distinct nodes in the walk ``ModExpression/arguments`` takes.
    private mutating func intSlot() -> ModNode {
        defer { intCount += 1 }
        return .int(intCount)
    }

    private mutating func floatSlot() -> ModNode {
        defer { floatCount += 1 }
        return .unary(.float, .int(-1 - floatCount))
    }
}

/// A mod's per-head values: the statements of `NAME_prepare`, each stored in a field of `NAME_prepared`.
private struct PreparedStatements {
    private var fields = ""
    private var body = ""
    private var names: [String: String] = [:]

    /// The field holding `text` (of C type `type`), added on first use; `text` may read the prepare function's
    /// parameters and earlier fields.
    mutating func field(_ text: String, type: String) -> String {
        if let known = names[text] { return known }
        let field = "v\(names.count)"
        fields += "    \(type) \(field);\n"
        body += "    p.\(field) = \(text);\n"
        names[text] = "p.\(field)"
        return "p.\(field)"
    }

    func definition(name: String) -> String {
        """
        struct \(name)_prepared {
        \(fields)};
        FA_INLINE \(name)_prepared \(name)_prepare(long long b, long long h, long long q_len, long long kv_len, fa_mod_arguments m) {
            \(name)_prepared p;
        \(body)    return p;
        }

        """
    }
}

/// Emits lifted nodes as `const` statements, one per distinct subexpression; per-head ones go to `prepared`.
private struct CUDAModStatements {
    let tables: [ModTable]
    /// Where table extents start in `m.ints`: after the Int scalars.
    let tableExtents: Int
    private(set) var body = ""
    private(set) var prepared: PreparedStatements
    private var names: [ModNode: String] = [:]
    private var ranges = ModIntegerRanges()
    private var declared = 0

    init(tables: [ModTable], tableExtents: Int, prepared: PreparedStatements = PreparedStatements()) {
        self.tables = tables
        self.tableExtents = tableExtents
        self.prepared = prepared
    }

    /// The field holding the per-head value `text`.
    mutating func perHead(_ text: String, type: String) -> String {
        prepared.field(text, type: type)
    }

    /// The name of a value holding `node`, emitting the statements it needs.
    mutating func emit(_ node: ModNode) -> String {
        for next in node.uniqueNodes(stoppingAt: { names[$0] != nil }) where names[next] == nil {
            names[next] = emitStatement(next)
        }
        return names[node] ?? ""
    }

    /// The name of a value holding `node`, whose operands are emitted already.
    private mutating func emitStatement(_ node: ModNode) -> String {
        func name(_ x: ModNode) -> String { names[x] ?? "" }
        let text: String
        switch node.operation {
        case .variable(let variable): return variable.rawValue
        case .float(let value): return "__int_as_float(0x\(String(value.bitPattern, radix: 16)))"
        case .clamp(let x, let low, let high):
            let raised = binary(.max, name(x), name(low), type: x.type)
            text = binary(.min, declare(raised, of: node), name(high), type: x.type)
        // The operand of a Float slot's `float()`, which reads the slot itself.
        case .int(let slot) where slot < 0: return ""
        case .int(let slot): text = "m.ints[\(slot)]"
        case .unary(.float, let x) where x.floatSlot != nil: text = "m.floats[\(x.floatSlot ?? 0)]"
        case .parameter(let parameter): text = "\(parameter.value)"  // unreachable: lifted to slots
        case .unary(.float, let x) where x.type == .int && ranges.fitsInt32(x): text = "(float)(int)\(name(x))"
        case .unary(let op, let x): text = unary(op, name(x), type: x.type)
        case .binary(let op, let x, let y): text = binary(op, name(x), name(y), type: x.type)
        case .select(let c, let x, let y): text = "\(name(c)) ? \(name(x)) : \(name(y))"
        case .lookup(let table, let indices): text = lookup(table, indices.map(name))
        }
        return declare(text, of: node)
    }

    /// A new value holding `text`, of `node`'s type, per head when `node` is.
    private mutating func declare(_ text: String, of node: ModNode) -> String {
        if node.isPerHead { return prepared.field(text, type: node.type.cudaType) }
        let name = "v\(declared)"
        declared += 1
        body += "    const \(node.type.cudaType) \(name) = \(text);\n"
        return name
    }

    private func unary(_ op: ModUnaryOperator, _ x: String, type: ModType) -> String {
        switch (op, type) {
        case (.not, _): "!\(x)"
        case (.negate, .int): "fa_ineg(\(x))"
        case (.abs, .int): "fa_iabs(\(x))"
        case (.float, _): "(float)\(x)"
        case (.negate, _): "-\(x)"
        case (.abs, _): "fa_fabs(\(x))"
        case (.exp, _): "fa_expf(\(x))"
        case (.log, _): "fa_logf(\(x))"
        case (.tanh, _): "fa_tanhf(\(x))"
        case (.sqrt, _): "sqrtf(\(x))"
        }
    }

    private func binary(_ op: ModBinaryOperator, _ x: String, _ y: String, type: ModType) -> String {
        let prefix = type == .int ? "fa_i" : "fa_f"
        switch op {
        case .add: return type == .int ? "fa_iadd(\(x), \(y))" : "__fadd_rn(\(x), \(y))"
        case .subtract: return type == .int ? "fa_isub(\(x), \(y))" : "__fsub_rn(\(x), \(y))"
        case .multiply: return type == .int ? "fa_imul(\(x), \(y))" : "__fmul_rn(\(x), \(y))"
        case .divide: return type == .int ? "fa_idiv(\(x), \(y))" : "fa_fdiv(\(x), \(y))"
        case .remainder: return "\(prefix)mod(\(x), \(y))"
        case .min: return "\(prefix)min(\(x), \(y))"
        case .max: return "\(prefix)max(\(x), \(y))"
        case .equal, .notEqual, .less, .lessEqual, .greater, .greaterEqual, .and, .or: return "\(x) \(op.rawValue) \(y)"
        }
    }

    /// Row-major offset of the clamped indices; the pointer and extents (from `m.ints`, so a table of another shape
    /// and the same rank needs no new kernel) are per-head values.
    private mutating func lookup(_ table: ModTable, _ indices: [String]) -> String {
        let slot = tables.firstIndex(of: table) ?? 0
        let element = table.elementType == .int ? "int" : "float"
        let pointer = prepared.field("m.tables[\(slot)]", type: "fa_u64")
        let read = "((const \(element)*)\(pointer))[\(offset(in: table, indices))]"
        return table.elementType == .int ? "(long long)\(read)" : read
    }

    /// The row-major element offset of `indices` (each clamped to its axis) in `table`.
    mutating func offset(in table: ModTable, _ indices: [String]) -> String {
        let slot = tables.firstIndex(of: table) ?? 0
        var offset = ""
        for (axis, index) in indices.enumerated() {
            let extent = prepared.field("m.ints[\(tableExtents + 3 * slot + axis)]", type: "long long")
            let clamped = "fa_clamp_index(\(index), \(extent))"
            offset = offset.isEmpty ? clamped : "(\(offset)) * \(extent) + \(clamped)"
        }
        return offset
    }
}

extension ModType {
    /// The C type a value of this type is held in.
    var cudaType: String {
        switch self {
        case .int: "long long"
        case .float: "float"
        case .bool: "bool"
        }
    }
}

extension ModNode {
    /// Whether the value is fixed by the head: it reads neither `q`, `kv` nor `score`.
    fileprivate var isPerHead: Bool { ![ModVariable.q, .kv, .score].contains { reads($0) } }

    /// The Float argument slot `k` that ``ArgumentLifter`` wrote as `float(.int(−1 − k))`'s operand `.int(−1 − k)`.
    fileprivate var floatSlot: Int? {
        if case .int(let slot) = operation, slot < 0 { -1 - slot } else { nil }
    }
}
