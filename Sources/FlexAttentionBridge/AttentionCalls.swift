import CFlexAttention
import FlexAttention

@_cdecl("fa_attention_create")
public func attentionCreate(
    _ desc: UnsafePointer<fa_attention_desc>?, _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> fa_status {
    reportingStatus {
        guard let out else { throw BridgeError.null("out") }
        guard let desc else { throw BridgeError.null("desc") }
        let attention = try PreparedAttention(AttentionDescription(desc.pointee))
        out.pointee = Handle.make(attention)
    }
}

@_cdecl("fa_attention_free")
public func attentionFree(_ attention: OpaquePointer?) {
    Handle.release(attention, as: PreparedAttention.self)
}

@_cdecl("fa_attention_gradient_table_count")
public func attentionGradientTableCount(_ attention: OpaquePointer?) -> Int64 {
    Int64((try? Handle.object(attention, as: PreparedAttention.self, named: "attention"))?.gradientTables.count ?? 0)
}

@_cdecl("fa_attention_gradient_table_name")
public func attentionGradientTableName(_ attention: OpaquePointer?, _ index: Int64) -> UnsafePointer<CChar>? {
    guard let names = (try? Handle.object(attention, as: PreparedAttention.self, named: "attention"))?.gradientTableNames,
          index >= 0, index < names.count
    else { return nil }
    return names[Int(index)].pointer
}

@_cdecl("fa_attention_forward")
public func attentionForward(
    _ attention: OpaquePointer?, _ query: UnsafePointer<DLTensor>?, _ key: UnsafePointer<DLTensor>?,
    _ value: UnsafePointer<DLTensor>?, _ tables: UnsafePointer<fa_table>?, _ tableCount: Int64,
    _ stream: UnsafeMutableRawPointer?, _ outputKind: Int32, _ output: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
    _ logSumExp: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> fa_status {
    reportingStatus {
        let prepared = try Handle.object(attention, as: PreparedAttention.self, named: "attention")
        guard let output else { throw BridgeError.null("output") }
        guard let logSumExp else { throw BridgeError.null("log_sum_exp") }
        let kind = try DLPackOutputKind(outputKind)
        let (q, k, v) = try prepared.inputs(query, key, value)
        let result = try prepared.engine.forward(
            query: q, key: k, value: v, tables: prepared.tableValues(tables, count: tableCount), stream: stream)
        let made = try DLPackOutputs.make([result.output, result.logSumExp], kind: kind)
        (output.pointee, logSumExp.pointee) = (made[0], made[1])
    }
}

@_cdecl("fa_attention_forward_into")
public func attentionForwardInto(
    _ attention: OpaquePointer?, _ query: UnsafePointer<DLTensor>?, _ key: UnsafePointer<DLTensor>?,
    _ value: UnsafePointer<DLTensor>?, _ tables: UnsafePointer<fa_table>?, _ tableCount: Int64,
    _ output: UnsafeMutablePointer<DLTensor>?, _ logSumExp: UnsafeMutablePointer<DLTensor>?,
    _ stream: UnsafeMutableRawPointer?
) -> fa_status {
    reportingStatus {
        let prepared = try Handle.object(attention, as: PreparedAttention.self, named: "attention")
        let (q, k, v) = try prepared.inputs(query, key, value)
        try prepared.engine.forward(
            query: q, key: k, value: v, tables: prepared.tableValues(tables, count: tableCount),
            into: prepared.outputShaped(output.map { UnsafePointer($0) }, named: "output"),
            logSumExp: prepared.logSumExp(logSumExp.map { UnsafePointer($0) }), stream: stream)
    }
}

@_cdecl("fa_attention_backward")
public func attentionBackward(
    _ attention: OpaquePointer?, _ query: UnsafePointer<DLTensor>?, _ key: UnsafePointer<DLTensor>?,
    _ value: UnsafePointer<DLTensor>?, _ output: UnsafePointer<DLTensor>?, _ logSumExp: UnsafePointer<DLTensor>?,
    _ outputGradient: UnsafePointer<DLTensor>?, _ tables: UnsafePointer<fa_table>?, _ tableCount: Int64,
    _ stream: UnsafeMutableRawPointer?, _ outputKind: Int32,
    _ queryGradient: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
    _ keyGradient: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
    _ valueGradient: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
    _ tableGradients: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
    _ sinkGradient: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> fa_status {
    reportingStatus {
        let prepared = try Handle.object(attention, as: PreparedAttention.self, named: "attention")
        guard prepared.includesBackward else {
            throw BridgeError.invalid("this attention was prepared without the backward pass (includes_backward 0)")
        }
        guard let queryGradient else { throw BridgeError.null("query_gradient") }
        guard let keyGradient else { throw BridgeError.null("key_gradient") }
        guard let valueGradient else { throw BridgeError.null("value_gradient") }
        guard tableGradients != nil || prepared.gradientTables.isEmpty else {
            throw BridgeError.null("table_gradients (the score mod has \(prepared.gradientTables.count) Float tables)")
        }
        guard sinkGradient != nil || !prepared.hasSinks else { throw BridgeError.null("sink_gradient (the attention has sinks)") }
        let kind = try DLPackOutputKind(outputKind)
        let (q, k, v) = try prepared.inputs(query, key, value)
        let gradients = try prepared.engine.backward(
            query: q, key: k, value: v, output: prepared.outputShaped(output, named: "output"),
            logSumExp: prepared.logSumExp(logSumExp), outputGradient: prepared.outputShaped(
                outputGradient, named: "output_gradient"),
            tables: prepared.tableValues(tables, count: tableCount), stream: stream)
        let made = try DLPackOutputs.make(
            [gradients.query, gradients.key, gradients.value] + gradients.tables + [gradients.sink].compactMap { $0 },
            kind: kind)
        (queryGradient.pointee, keyGradient.pointee, valueGradient.pointee) = (made[0], made[1], made[2])
        for index in gradients.tables.indices { tableGradients?[index] = made[3 + index] }
        sinkGradient?.pointee = gradients.sink == nil ? nil : made[made.count - 1]
    }
}
