import CFlexAttention

/// `fa_abi_version`: the ABI version this library implements.
@_cdecl("fa_abi_version")
public func abiVersion() -> Int32 { FA_ABI_VERSION }
