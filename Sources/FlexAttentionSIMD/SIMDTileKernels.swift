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

    /// Four keys against four query rows at a time: sixteen accumulators, each a vector along the depth, reduced
    /// together at the end (``DotAccumulators/sums()``). Keys and rows past the counts read key or row 0 again and
    /// are not stored, as in ``block``.
    @inlinable
    static func dotRows(_ o: DotRowsOperands) {
        let (full, tail) = (o.depth / 16 * 16, o.depth % 16)
        var k = 0
        while k < o.keys {
            let a0 = o.a + k * o.aRowStride
            let a1 = k + 1 < o.keys ? a0 + o.aRowStride : a0
            let a2 = k + 2 < o.keys ? a0 + 2 * o.aRowStride : a0
            let a3 = k + 3 < o.keys ? a0 + 3 * o.aRowStride : a0
            var r = 0
            while r < o.rows {
                let q0 = o.q + r * o.ldq
                let q1 = r + 1 < o.rows ? q0 + o.ldq : q0
                let q2 = r + 2 < o.rows ? q0 + 2 * o.ldq : q0
                let q3 = r + 3 < o.rows ? q0 + 3 * o.ldq : q0
                var s = DotAccumulators()
                var p = 0
                while p < full {
                    s.add(load(a0 + p, as: Lanes.self), load(a1 + p, as: Lanes.self), load(a2 + p, as: Lanes.self),
                          load(a3 + p, as: Lanes.self), load(q0 + p, as: Lanes.self), load(q1 + p, as: Lanes.self),
                          load(q2 + p, as: Lanes.self), load(q3 + p, as: Lanes.self))
                    p += 16
                }
                if tail > 0 {
                    s.add(loadLanes(a0 + p, count: tail), loadLanes(a1 + p, count: tail),
                          loadLanes(a2 + p, count: tail), loadLanes(a3 + p, count: tail),
                          loadLanes(q0 + p, count: tail), loadLanes(q1 + p, count: tail),
                          loadLanes(q2 + p, count: tail), loadLanes(q3 + p, count: tail))
                }
                let (first, second) = s.sums()
                let (keyCount, rowCount) = (min(4, o.keys - k), min(4, o.rows - r))
                let c = o.c + k * o.ldc + r
                @inline(__always) func store(_ sums: SIMD4<Float>, key i: Int) {
                    guard i < keyCount else { return }
                    for j in 0..<rowCount { c[i * o.ldc + j] = sums[j] }
                }
                store(first.lowHalf, key: 0)
                store(first.highHalf, key: 1)
                store(second.lowHalf, key: 2)
                store(second.highHalf, key: 3)
                r += 4
            }
            k += 4
        }
    }
}

/// The sixteen dot-product accumulators of ``SIMDTileKernels/dotRows(_:)``: `kirj` is key i against row j.
@usableFromInline
struct DotAccumulators {
    @usableFromInline var k0r0 = FloatLanes(), k0r1 = FloatLanes(), k0r2 = FloatLanes(), k0r3 = FloatLanes()
    @usableFromInline var k1r0 = FloatLanes(), k1r1 = FloatLanes(), k1r2 = FloatLanes(), k1r3 = FloatLanes()
    @usableFromInline var k2r0 = FloatLanes(), k2r1 = FloatLanes(), k2r2 = FloatLanes(), k2r3 = FloatLanes()
    @usableFromInline var k3r0 = FloatLanes(), k3r1 = FloatLanes(), k3r2 = FloatLanes(), k3r3 = FloatLanes()

    @inlinable init() {}

    @inlinable @inline(__always)
    mutating func add(
        _ a0: FloatLanes, _ a1: FloatLanes, _ a2: FloatLanes, _ a3: FloatLanes,
        _ q0: FloatLanes, _ q1: FloatLanes, _ q2: FloatLanes, _ q3: FloatLanes
    ) {
        k0r0.addProduct(a0, q0); k0r1.addProduct(a0, q1); k0r2.addProduct(a0, q2); k0r3.addProduct(a0, q3)
        k1r0.addProduct(a1, q0); k1r1.addProduct(a1, q1); k1r2.addProduct(a1, q2); k1r3.addProduct(a1, q3)
        k2r0.addProduct(a2, q0); k2r1.addProduct(a2, q1); k2r2.addProduct(a2, q2); k2r3.addProduct(a2, q3)
        k3r0.addProduct(a3, q0); k3r1.addProduct(a3, q1); k3r2.addProduct(a3, q2); k3r3.addProduct(a3, q3)
    }

    /// The sixteen horizontal sums, keys 0 and 1 then keys 2 and 3, each key's four rows in order. Every level
    /// halves each accumulator's partial sums and packs two accumulators' halves into one vector, so the reduction
    /// costs a few vector operations per sum rather than a chain of fifteen scalar adds.
    @inlinable @inline(__always)
    func sums() -> (SIMD8<Float>, SIMD8<Float>) {
        @inline(__always) func halve(_ x: FloatLanes) -> SIMD8<Float> { x.lowHalf + x.highHalf }
        // Two accumulators of 8 partials → one vector of 4 + 4.
        @inline(__always) func pair(_ x: SIMD8<Float>, _ y: SIMD8<Float>) -> SIMD8<Float> {
            SIMD8(lowHalf: x.lowHalf, highHalf: y.lowHalf) + SIMD8(lowHalf: x.highHalf, highHalf: y.highHalf)
        }
        // Two vectors of pairs (4 accumulators × 4 partials, then × 2) → 4 accumulators × 2, then × 1.
        @inline(__always) func fold(_ x: SIMD8<Float>, _ y: SIMD8<Float>) -> SIMD8<Float> {
            SIMD8(lowHalf: x.evenHalf, highHalf: y.evenHalf) + SIMD8(lowHalf: x.oddHalf, highHalf: y.oddHalf)
        }
        @inline(__always) func key(_ r0: FloatLanes, _ r1: FloatLanes, _ r2: FloatLanes, _ r3: FloatLanes)
            -> SIMD8<Float>
        {
            // [r0 r0 r1 r1 r2 r2 r3 r3] after the fold: 2 partials each, in row order.
            fold(pair(halve(r0), halve(r1)), pair(halve(r2), halve(r3)))
        }
        let (key0, key1) = (key(k0r0, k0r1, k0r2, k0r3), key(k1r0, k1r1, k1r2, k1r3))
        let (key2, key3) = (key(k2r0, k2r1, k2r2, k2r3), key(k3r0, k3r1, k3r2, k3r3))
        return (fold(key0, key1), fold(key2, key3))
    }
}
