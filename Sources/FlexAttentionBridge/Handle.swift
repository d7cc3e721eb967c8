/// The objects handed to C as opaque pointers (`fa_block_mask *`, `fa_attention *`): each holds one retain of its
/// Swift object, taken by ``make(_:)`` and given back by ``release(_:as:)``.
enum Handle {
    /// A new handle retaining `object`.
    static func make(_ object: AnyObject) -> OpaquePointer {
        OpaquePointer(Unmanaged.passRetained(object).toOpaque())
    }

    /// The object behind `handle`, which must have been made from an object of type `T`.
    /// - Throws: ``BridgeError`` (invalid argument) for NULL.
    static func object<T: AnyObject>(_ handle: OpaquePointer?, as type: T.Type, named name: String) throws -> T {
        guard let handle else { throw BridgeError.null(name) }
        return Unmanaged<T>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
    }

    /// Gives back `handle`'s retain; nothing for NULL.
    static func release<T: AnyObject>(_ handle: OpaquePointer?, as type: T.Type) {
        guard let handle else { return }
        Unmanaged<T>.fromOpaque(UnsafeRawPointer(handle)).release()
    }
}
