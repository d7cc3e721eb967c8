/// The generic implementation of every ``TileOperation``. The GEMM uses accumulator rows of type `Wide` and
/// covers narrower remainders with `Half`, then `Quarter` (each at least 16 lanes, so any multiple of 16 fits).
public enum SIMDTileKernels<Wide: AccumulatorRow, Half: AccumulatorRow, Quarter: AccumulatorRow> {

    @inlinable @inline(__always)
    static func load<V: SIMD>(_ pointer: UnsafePointer<Float>, as _: V.Type) -> V {
        UnsafeRawPointer(pointer).loadUnaligned(as: V.self)
    }

    @inlinable @inline(__always)
    static func store<V: SIMD>(_ value: V, to pointer: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: V.self)
    }

    /// Four rows of C, one accumulator row each, accumulated in registers across the whole depth. Rows past
    /// `rows` read row 0 of A again and are not stored, so edge blocks reuse the same code.
    @inlinable @inline(__always)
    static func block<R: AccumulatorRow>(
        _: R.Type, rows: Int, depth: Int,
        a: UnsafePointer<Float>, aRowStride: Int, aDepthStride: Int,
        b: UnsafePointer<Float>, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        let a0 = a
        let a1 = a + (rows > 1 ? aRowStride : 0)
        let a2 = a + (rows > 2 ? 2 * aRowStride : 0)
        let a3 = a + (rows > 3 ? 3 * aRowStride : 0)
        var c0 = R(), c1 = R(), c2 = R(), c3 = R()
        if accumulate {
            c0 = R(c)
            if rows > 1 { c1 = R(c + ldc) }
            if rows > 2 { c2 = R(c + 2 * ldc) }
            if rows > 3 { c3 = R(c + 3 * ldc) }
        }
        var bp = b
        var offset = 0
        for _ in 0..<depth {
            let bRow = R(bp)
            c0.addProduct(a0[offset], bRow)
            c1.addProduct(a1[offset], bRow)
            c2.addProduct(a2[offset], bRow)
            c3.addProduct(a3[offset], bRow)
            bp += ldb
            offset += aDepthStride
        }
        c0.store(to: c)
        if rows > 1 { c1.store(to: c + ldc) }
        if rows > 2 { c2.store(to: c + 2 * ldc) }
        if rows > 3 { c3.store(to: c + 3 * ldc) }
    }

    /// All row blocks of one column block of `R.lanes` lanes.
    @inlinable @inline(__always)
    static func columnBlock<R: AccumulatorRow>(
        _: R.Type, rows: Int, depth: Int,
        a: UnsafePointer<Float>, aRowStride: Int, aDepthStride: Int,
        b: UnsafePointer<Float>, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        var row = 0
        while row < rows {
            block(
                R.self, rows: min(4, rows - row), depth: depth,
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
        case let .scoreGradient(p, dp, rows, lanes, ld, delta, slope):
            scoreGradient(p: p, dp: dp, rows: rows, lanes: lanes, ld: ld, delta: delta, slope: slope)
        case let .scaledTanh(o):
            scaledTanh(o)
        case let .dotRows(o):
            dotRows(o)
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
            if remaining >= Wide.lanes {
                columnBlock(
                    Wide.self, rows: rows, depth: depth, a: a, aRowStride: aRowStride, aDepthStride: aDepthStride,
                    b: bColumn, ldb: ldb, c: cColumn, ldc: ldc, accumulate: accumulate)
                column += Wide.lanes
            } else if remaining >= Half.lanes {
                columnBlock(
                    Half.self, rows: rows, depth: depth, a: a, aRowStride: aRowStride, aDepthStride: aDepthStride,
                    b: bColumn, ldb: ldb, c: cColumn, ldc: ldc, accumulate: accumulate)
                column += Half.lanes
            } else {
                columnBlock(
                    Quarter.self, rows: rows, depth: depth, a: a, aRowStride: aRowStride,
                    aDepthStride: aDepthStride, b: bColumn, ldb: ldb, c: cColumn, ldc: ldc, accumulate: accumulate)
                column += Quarter.lanes
            }
        }
    }

    public typealias Lanes = FloatLanes

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
                newMax = lanewiseMax(newMax, load(tile + row * ld + column, as: Lanes.self))
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
        delta: UnsafePointer<Float>, slope: UnsafePointer<Float>?
    ) {
        for column in stride(from: 0, to: lanes, by: 16) {
            let d = load(delta + column, as: Lanes.self)
            for row in 0..<rows {
                let offset = row * ld + column
                // Selected, not multiplied: where p = 0 (a masked score) dP − Delta or the slope may be ±∞.
                let probability = load(p + offset, as: Lanes.self)
                let gradient = (probability * (load(dp + offset, as: Lanes.self) - d))
                    .replacing(with: 0, where: probability .== Lanes(repeating: 0))
                guard let slope else {
                    store(gradient, to: dp + offset)
                    continue
                }
                let sloped = gradient * load(slope + offset, as: Lanes.self)
                store(sloped.replacing(with: 0, where: gradient .== Lanes(repeating: 0)), to: dp + offset)
            }
        }
    }

    @inlinable
    static func scaledTanh(_ o: ScaledTanhOperands) {
        let (inputScale, outputScale) = (Lanes(repeating: o.inputScale), Lanes(repeating: o.outputScale))
        let slopeScale = Lanes(repeating: o.slopeScale)
        // One vector: the scaled tanh written to the tile, its slope (1 − t² with one rounding) to `slope`.
        @inline(__always) func run(_ offset: Int, _ count: Int) {
            let t = tanhLanes(loadLanes(o.tile + offset, count: count) * inputScale)
            storeLanes(t * outputScale, to: o.tile + offset, count: count)
            if let slope = o.slope {
                storeLanes(slopeScale * Lanes(repeating: 1).addingProduct(-t, t), to: slope + offset, count: count)
            }
        }
        let whole = o.columns / 16 * 16
        for row in 0..<o.rows {
            for column in stride(from: 0, to: whole, by: 16) { run(row * o.ld + column, 16) }
            if whole < o.columns { run(row * o.ld + whole, o.columns - whole) }
        }
    }

    /// Two keys against up to four query rows at a time: eight independent accumulators, each a vector along the
    /// depth, reduced once at the end. Rows past `rows` read row 0 again and are not stored, as in ``block``.
    @inlinable
    static func dotRows(_ o: DotRowsOperands) {
        let (full, tail) = (o.depth / 16 * 16, o.depth % 16)
        var k = 0
        while k < o.keys {
            let a0 = o.a + k * o.aRowStride
            let a1 = k + 1 < o.keys ? a0 + o.aRowStride : a0
            var r = 0
            while r < o.rows {
                let q0 = o.q + r * o.ldq
                let q1 = r + 1 < o.rows ? q0 + o.ldq : q0
                let q2 = r + 2 < o.rows ? q0 + 2 * o.ldq : q0
                let q3 = r + 3 < o.rows ? q0 + 3 * o.ldq : q0
                var (s00, s01, s02, s03) = (Lanes(), Lanes(), Lanes(), Lanes())
                var (s10, s11, s12, s13) = (Lanes(), Lanes(), Lanes(), Lanes())
                @inline(__always) func step(_ k0: Lanes, _ k1: Lanes, _ p: Int, _ count: Int) {
                    let (v0, v1, v2, v3) = count == 16
                        ? (load(q0 + p, as: Lanes.self), load(q1 + p, as: Lanes.self), load(q2 + p, as: Lanes.self),
                           load(q3 + p, as: Lanes.self))
                        : (loadLanes(q0 + p, count: count), loadLanes(q1 + p, count: count),
                           loadLanes(q2 + p, count: count), loadLanes(q3 + p, count: count))
                    s00.addProduct(k0, v0); s01.addProduct(k0, v1); s02.addProduct(k0, v2); s03.addProduct(k0, v3)
                    s10.addProduct(k1, v0); s11.addProduct(k1, v1); s12.addProduct(k1, v2); s13.addProduct(k1, v3)
                }
                var p = 0
                while p < full {
                    step(load(a0 + p, as: Lanes.self), load(a1 + p, as: Lanes.self), p, 16)
                    p += 16
                }
                if tail > 0 { step(loadLanes(a0 + p, count: tail), loadLanes(a1 + p, count: tail), p, tail) }
                let n = min(4, o.rows - r)
                let c0 = o.c + k * o.ldc + r
                c0[0] = s00.sum()
                if n > 1 { c0[1] = s01.sum() }
                if n > 2 { c0[2] = s02.sum() }
                if n > 3 { c0[3] = s03.sum() }
                if k + 1 < o.keys {
                    let c1 = c0 + o.ldc
                    c1[0] = s10.sum()
                    if n > 1 { c1[1] = s11.sum() }
                    if n > 2 { c1[2] = s12.sum() }
                    if n > 3 { c1[3] = s13.sum() }
                }
                r += 4
            }
            k += 2
        }
    }
}
