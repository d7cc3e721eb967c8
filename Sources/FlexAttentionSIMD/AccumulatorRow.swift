/// A row of GEMM accumulators held in registers: one, two or four vectors side by side. The micro-kernel is
/// written once over this protocol; each instruction set picks the widths that fill its register file without
/// spilling (Swift lowers SIMD16<Float> to one AVX-512 register, but wider SIMD types to scalar code).
public protocol AccumulatorRow {
    /// Floats in the row.
    static var lanes: Int { get }
    /// Zeros.
    init()
    /// Reads `lanes` floats (unaligned).
    init(_ pointer: UnsafePointer<Float>)
    /// Writes `lanes` floats (unaligned).
    func store(to pointer: UnsafeMutablePointer<Float>)
    /// `self += x · b`, lane by lane.
    mutating func addProduct(_ x: Float, _ b: Self)
}

/// One vector.
public struct OneVector<V: SIMD>: AccumulatorRow where V.Scalar == Float {
    @usableFromInline var v0: V
    @inlinable @inline(__always) public static var lanes: Int { V.scalarCount }
    @inlinable @inline(__always) public init() { v0 = V() }
    @inlinable @inline(__always) public init(_ pointer: UnsafePointer<Float>) { v0 = UnsafeRawPointer(pointer).loadUnaligned(as: V.self) }
    @inlinable @inline(__always) public func store(to pointer: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(pointer).storeBytes(of: v0, as: V.self)
    }
    @inlinable @inline(__always) public mutating func addProduct(_ x: Float, _ b: Self) { v0.addProduct(V(repeating: x), b.v0) }
}

/// Two vectors.
public struct TwoVectors<V: SIMD>: AccumulatorRow where V.Scalar == Float {
    @usableFromInline var v0: OneVector<V>, v1: OneVector<V>
    @inlinable @inline(__always) public static var lanes: Int { 2 * V.scalarCount }
    @inlinable @inline(__always) public init() { (v0, v1) = (OneVector(), OneVector()) }
    @inlinable @inline(__always) public init(_ pointer: UnsafePointer<Float>) {
        (v0, v1) = (OneVector(pointer), OneVector(pointer + V.scalarCount))
    }
    @inlinable @inline(__always) public func store(to pointer: UnsafeMutablePointer<Float>) {
        v0.store(to: pointer)
        v1.store(to: pointer + V.scalarCount)
    }
    @inlinable @inline(__always) public mutating func addProduct(_ x: Float, _ b: Self) {
        v0.addProduct(x, b.v0)
        v1.addProduct(x, b.v1)
    }
}

/// Four vectors.
public struct FourVectors<V: SIMD>: AccumulatorRow where V.Scalar == Float {
    @usableFromInline var v0: TwoVectors<V>, v1: TwoVectors<V>
    @inlinable @inline(__always) public static var lanes: Int { 4 * V.scalarCount }
    @inlinable @inline(__always) public init() { (v0, v1) = (TwoVectors(), TwoVectors()) }
    @inlinable @inline(__always) public init(_ pointer: UnsafePointer<Float>) {
        (v0, v1) = (TwoVectors(pointer), TwoVectors(pointer + 2 * V.scalarCount))
    }
    @inlinable @inline(__always) public func store(to pointer: UnsafeMutablePointer<Float>) {
        v0.store(to: pointer)
        v1.store(to: pointer + 2 * V.scalarCount)
    }
    @inlinable @inline(__always) public mutating func addProduct(_ x: Float, _ b: Self) {
        v0.addProduct(x, b.v0)
        v1.addProduct(x, b.v1)
    }
}
