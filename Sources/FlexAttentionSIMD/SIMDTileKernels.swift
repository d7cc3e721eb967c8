/// The generic implementation of every ``TileOperation`` for any vector width. `Wide` is the main vector (two of them span one block of lanes);
/// `Half` and `Quarter` cover the 16-lane remainders when a block is wider than 16 lanes.
public enum SIMDTileKernels<Wide: SIMD, Half: SIMD, Quarter: SIMD>
where Wide.Scalar == Float, Half.Scalar == Float, Quarter.Scalar == Float,
    Wide.MaskStorage.Scalar == Int32, Half.MaskStorage.Scalar == Int32, Quarter.MaskStorage.Scalar == Int32 {

    @inlinable @inline(__always)
    static func load<V: SIMD>(_ pointer: UnsafePointer<Float>, as _: V.Type) -> V {
        UnsafeRawPointer(pointer).loadUnaligned(as: V.self)
    }

    @inlinable @inline(__always)
    static func store<V: SIMD>(_ value: V, to pointer: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: V.self)
    }

    /// Four rows of C times two vectors of lanes, accumulated in registers across the whole depth. Rows past
    /// `rows` read row 0 again and are not stored, so edge blocks reuse the same code.
    @inlinable @inline(__always)
    static func block<V: SIMD>(
        _: V.Type, rows: Int, depth: Int,
        a: UnsafePointer<Float>, aRowStride: Int, aDepthStride: Int,
        b: UnsafePointer<Float>, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) where V.Scalar == Float {
        let w = V.scalarCount
        let a0 = a
        let a1 = a + (rows > 1 ? aRowStride : 0)
        let a2 = a + (rows > 2 ? 2 * aRowStride : 0)
        let a3 = a + (rows > 3 ? 3 * aRowStride : 0)
        var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V(), c30 = V(), c31 = V()
        if accumulate {
            c00 = load(c, as: V.self); c01 = load(c + w, as: V.self)
            if rows > 1 { c10 = load(c + ldc, as: V.self); c11 = load(c + ldc + w, as: V.self) }
            if rows > 2 { c20 = load(c + 2 * ldc, as: V.self); c21 = load(c + 2 * ldc + w, as: V.self) }
            if rows > 3 { c30 = load(c + 3 * ldc, as: V.self); c31 = load(c + 3 * ldc + w, as: V.self) }
        }
        var bp = b
        var offset = 0
        for _ in 0..<depth {
            let b0 = load(bp, as: V.self)
            let b1 = load(bp + w, as: V.self)
            let x0 = V(repeating: a0[offset]), x1 = V(repeating: a1[offset])
            let x2 = V(repeating: a2[offset]), x3 = V(repeating: a3[offset])
            c00.addProduct(x0, b0); c01.addProduct(x0, b1)
            c10.addProduct(x1, b0); c11.addProduct(x1, b1)
            c20.addProduct(x2, b0); c21.addProduct(x2, b1)
            c30.addProduct(x3, b0); c31.addProduct(x3, b1)
            bp += ldb
            offset += aDepthStride
        }
        store(c00, to: c); store(c01, to: c + w)
        if rows > 1 { store(c10, to: c + ldc); store(c11, to: c + ldc + w) }
        if rows > 2 { store(c20, to: c + 2 * ldc); store(c21, to: c + 2 * ldc + w) }
        if rows > 3 { store(c30, to: c + 3 * ldc); store(c31, to: c + 3 * ldc + w) }
    }

    /// All row blocks of one column block of width `2 · V.scalarCount`.
    @inlinable @inline(__always)
    static func columnBlock<V: SIMD>(
        _: V.Type, rows: Int, depth: Int,
        a: UnsafePointer<Float>, aRowStride: Int, aDepthStride: Int,
        b: UnsafePointer<Float>, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) where V.Scalar == Float {
        var row = 0
        while row < rows {
            block(
                V.self, rows: min(4, rows - row), depth: depth,
                a: a + row * aRowStride, aRowStride: aRowStride, aDepthStride: aDepthStride,
                b: b, ldb: ldb, c: c + row * ldc, ldc: ldc, accumulate: accumulate)
            row += 4
        }
    }

    /// Runs `operation` with this specialisation's vectors.
    @inlinable
    public static func perform(_ operation: TileOperation) {
        switch operation {
        case let .gemm(o):
            gemm(
                rows: o.rows, lanes: o.lanes, depth: o.depth, a: o.a, aRowStride: o.aRowStride,
                aDepthStride: o.aDepthStride, b: o.b, ldb: o.ldb, c: o.c, ldc: o.ldc, accumulate: o.accumulate)
        case let .softmaxStep(tile, rows, lanes, ld, runningMax, runningSum, correction):
            softmaxStep(
                tile: tile, rows: rows, lanes: lanes, ld: ld, runningMax: runningMax, runningSum: runningSum,
                correction: correction)
        case let .scaleColumns(c, rows, lanes, ldc, factor):
            scaleColumns(c: c, rows: rows, lanes: lanes, ldc: ldc, factor: factor)
        case let .probabilities(tile, rows, lanes, ld, lse2):
            probabilities(tile: tile, rows: rows, lanes: lanes, ld: ld, lse2: lse2)
        case let .scoreGradient(p, dp, rows, lanes, ld, delta):
            scoreGradient(p: p, dp: dp, rows: rows, lanes: lanes, ld: ld, delta: delta)
        }
    }

    @inlinable
    static func gemm(
        rows: Int, lanes: Int, depth: Int,
        a: UnsafePointer<Float>, aRowStride: Int, aDepthStride: Int,
        b: UnsafePointer<Float>, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        var column = 0
        while column < lanes {
            let remaining = lanes - column
            let bColumn = b + column
            let cColumn = c + column
            if remaining >= 2 * Wide.scalarCount {
                columnBlock(
                    Wide.self, rows: rows, depth: depth, a: a, aRowStride: aRowStride, aDepthStride: aDepthStride,
                    b: bColumn, ldb: ldb, c: cColumn, ldc: ldc, accumulate: accumulate)
                column += 2 * Wide.scalarCount
            } else if remaining >= 2 * Half.scalarCount {
                columnBlock(
                    Half.self, rows: rows, depth: depth, a: a, aRowStride: aRowStride, aDepthStride: aDepthStride,
                    b: bColumn, ldb: ldb, c: cColumn, ldc: ldc, accumulate: accumulate)
                column += 2 * Half.scalarCount
            } else {
                columnBlock(
                    Quarter.self, rows: rows, depth: depth, a: a, aRowStride: aRowStride,
                    aDepthStride: aDepthStride, b: bColumn, ldb: ldb, c: cColumn, ldc: ldc, accumulate: accumulate)
                column += 2 * Quarter.scalarCount
            }
        }
    }

    /// The element-wise primitives run on 16-lane vectors: wide enough for AVX-512, two registers on AVX2/NEON.
    public typealias Lanes = SIMD16<Float>

    @inlinable
    static func softmaxStep(
        tile: UnsafeMutablePointer<Float>, rows: Int, lanes: Int, ld: Int,
        runningMax: UnsafeMutablePointer<Float>, runningSum: UnsafeMutablePointer<Float>,
        correction: UnsafeMutablePointer<Float>
    ) {
        let negativeInfinity = Lanes(repeating: -.infinity)
        for column in stride(from: 0, to: lanes, by: 16) {
            let oldMax = load(runningMax + column, as: Lanes.self)
            var newMax = oldMax
            for row in 0..<rows {
                newMax = pointwiseMax(newMax, load(tile + row * ld + column, as: Lanes.self))
            }
            // An all-masked column keeps max −∞; subtracting 0 instead keeps its p = 2^−∞ = 0, not NaN.
            let pivot = newMax.replacing(with: 0, where: newMax .== negativeInfinity)
            var sum = Lanes()
            for row in 0..<rows {
                let pointer = tile + row * ld + column
                let p = exp2Lanes(load(pointer, as: Lanes.self) - pivot)
                store(p, to: pointer)
                sum += p
            }
            let factor = exp2Lanes(oldMax - pivot)
            store(factor, to: correction + column)
            store(load(runningSum + column, as: Lanes.self) * factor + sum, to: runningSum + column)
            store(newMax, to: runningMax + column)
        }
    }

    @inlinable
    static func scaleColumns(
        c: UnsafeMutablePointer<Float>, rows: Int, lanes: Int, ldc: Int, factor: UnsafePointer<Float>
    ) {
        for column in stride(from: 0, to: lanes, by: 16) {
            let f = load(factor + column, as: Lanes.self)
            for row in 0..<rows {
                let pointer = c + row * ldc + column
                store(load(pointer, as: Lanes.self) * f, to: pointer)
            }
        }
    }

    @inlinable
    static func probabilities(
        tile: UnsafeMutablePointer<Float>, rows: Int, lanes: Int, ld: Int, lse2: UnsafePointer<Float>
    ) {
        for column in stride(from: 0, to: lanes, by: 16) {
            let l = load(lse2 + column, as: Lanes.self)
            for row in 0..<rows {
                let pointer = tile + row * ld + column
                store(exp2Lanes(load(pointer, as: Lanes.self) - l), to: pointer)
            }
        }
    }

    @inlinable
    static func scoreGradient(
        p: UnsafePointer<Float>, dp: UnsafeMutablePointer<Float>, rows: Int, lanes: Int, ld: Int,
        delta: UnsafePointer<Float>
    ) {
        for column in stride(from: 0, to: lanes, by: 16) {
            let d = load(delta + column, as: Lanes.self)
            for row in 0..<rows {
                let offset = row * ld + column
                store(load(p + offset, as: Lanes.self) * (load(dp + offset, as: Lanes.self) - d), to: dp + offset)
            }
        }
    }
}
