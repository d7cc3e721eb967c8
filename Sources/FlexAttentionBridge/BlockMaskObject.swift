import CFlexAttention
import FlexAttention

/// What an `fa_block_mask *` points at: a mask analysed into the CPU's 64 × 64 blocks, and its text for
/// `fa_block_mask_description`.
final class BlockMaskObject: Sendable {
    let blockMask: BlockMask
    let description: OwnedCString

    init(_ blockMask: BlockMask) throws {
        self.blockMask = blockMask
        description = try OwnedCString(blockMask.mask.description)
    }
}

@_cdecl("fa_block_mask_create")
public func blockMaskCreate(
    _ mask: UnsafePointer<fa_mod>?, _ batch: Int64, _ heads: Int64, _ queryLength: Int64, _ keyLength: Int64,
    _ out: UnsafeMutablePointer<OpaquePointer?>?
) -> fa_status {
    reportingStatus {
        guard let out else { throw BridgeError.null("out") }
        guard let mask else { throw BridgeError.null("mask") }
        guard let parsed = try ModArgument(mask.pointee, role: "mask").mask() else {
            throw BridgeError.invalid("mask has no text: a block mask needs a mask")
        }
        let object = try BlockMaskObject(
            BlockMask(
                parsed, batch: checkSize(batch, named: "batch", positive: true),
                heads: checkSize(heads, named: "heads", positive: true),
                queryLength: checkSize(queryLength, named: "query_length", positive: true),
                keyLength: checkSize(keyLength, named: "key_length", positive: true)))
        out.pointee = Handle.make(object)
    }
}

@_cdecl("fa_block_mask_sparsity")
public func blockMaskSparsity(_ mask: OpaquePointer?, _ out: UnsafeMutablePointer<Double>?) -> fa_status {
    reportingStatus {
        let object = try Handle.object(mask, as: BlockMaskObject.self, named: "mask")
        guard let out else { throw BridgeError.null("out") }
        out.pointee = object.blockMask.sparsity
    }
}

@_cdecl("fa_block_mask_description")
public func blockMaskDescription(_ mask: OpaquePointer?) -> UnsafePointer<CChar> {
    (try? Handle.object(mask, as: BlockMaskObject.self, named: "mask"))?.description.pointer ?? emptyCString
}

@_cdecl("fa_block_mask_free")
public func blockMaskFree(_ mask: OpaquePointer?) {
    Handle.release(mask, as: BlockMaskObject.self)
}
