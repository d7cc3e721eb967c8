/// The vector primitives the CPU attention loops are built from, implemented once generically
/// (``SIMDTileKernels``) and specialised per instruction set: a conforming type forwards ``perform(_:)`` to a
/// specialisation compiled with that instruction set's flags. Every pointer is raw memory owned by the caller;
/// widths called `lanes` are multiples of 16, and buffers are padded to match.
///
/// Score tiles are held key-major, `tile[key * ld + query]`, so every per-query quantity (running max, sum,
/// log-sum-exp, Delta) is a vector along the contiguous axis and no primitive needs a horizontal reduction.
public protocol TileKernels: SendableMetatype {
    /// Runs one primitive.
    static func perform(_ operation: TileOperation)
}

/// One call of a tile primitive; see the ``TileKernels`` extension methods for what each computes.
public enum TileOperation {
    case gemm(GemmOperands)
    case softmaxStep(
        tile: UnsafeMutablePointer<Float>, rows: Int, lanes: Int, ld: Int,
        runningMax: UnsafeMutablePointer<Float>, runningSum: UnsafeMutablePointer<Float>,
        correction: UnsafeMutablePointer<Float>)
    case scaleColumns(c: UnsafeMutablePointer<Float>, rows: Int, lanes: Int, ldc: Int, factor: UnsafePointer<Float>)
    case probabilities(tile: UnsafeMutablePointer<Float>, rows: Int, lanes: Int, ld: Int, lse2: UnsafePointer<Float>)
    case scoreGradient(
        p: UnsafePointer<Float>, dp: UnsafeMutablePointer<Float>, rows: Int, lanes: Int, ld: Int,
        delta: UnsafePointer<Float>, slope: UnsafePointer<Float>?)
    case scaledTanh(ScaledTanhOperands)
    case dotRows(DotRowsOperands)
}

/// `c[k*ldc + r] = Σ_p a[k*aRowStride + p] · q[r*ldq + p]` for k < keys, r < rows (any counts), p < depth: each
/// key row against each query row, as dot products along the contiguous depth. Decoding's scores, where a few
/// query rows meet many keys: the work is `keys × rows × depth`, with no lanes padded.
public struct DotRowsOperands {
    public var keys: Int, rows: Int, depth: Int
    public var a: UnsafePointer<Float>, aRowStride: Int
    public var q: UnsafePointer<Float>, ldq: Int
    public var c: UnsafeMutablePointer<Float>, ldc: Int

    @inlinable
    public init(
        keys: Int, rows: Int, depth: Int, a: UnsafePointer<Float>, aRowStride: Int, q: UnsafePointer<Float>, ldq: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        (self.keys, self.rows, self.depth, self.a, self.aRowStride) = (keys, rows, depth, a, aRowStride)
        (self.q, self.ldq, self.c, self.ldc) = (q, ldq, c, ldc)
    }
}

/// `t = tanh(inputScale · x)` for each `x = tile[i*ld + j]`, i < rows, j < columns (any count): the tile gets
/// `outputScale · t` and, when `slope` is given, `slope[i*ld + j] = slopeScale · (1 − t²)`.
public struct ScaledTanhOperands {
    public var tile: UnsafeMutablePointer<Float>, rows: Int, columns: Int, ld: Int
    public var inputScale: Float, outputScale: Float
    public var slope: UnsafeMutablePointer<Float>?, slopeScale: Float

    @inlinable
    public init(
        tile: UnsafeMutablePointer<Float>, rows: Int, columns: Int, ld: Int, inputScale: Float, outputScale: Float,
        slope: UnsafeMutablePointer<Float>?, slopeScale: Float
    ) {
        (self.tile, self.rows, self.columns, self.ld) = (tile, rows, columns, ld)
        (self.inputScale, self.outputScale, self.slope, self.slopeScale) = (inputScale, outputScale, slope, slopeScale)
    }
}

/// `c[i*ldc + j] (+)= Σ_p a[i*aRowStride + p*aDepthStride] · b[p*ldb + j]` for i < rows, j < lanes, p < depth.
public struct GemmOperands {
    public var rows: Int, lanes: Int, depth: Int
    public var a: UnsafePointer<Float>, aRowStride: Int, aDepthStride: Int
    public var b: UnsafePointer<Float>, ldb: Int
    public var c: UnsafeMutablePointer<Float>, ldc: Int
    public var accumulate: Bool

    @inlinable
    public init(
        rows: Int, lanes: Int, depth: Int, a: UnsafePointer<Float>, aRowStride: Int, aDepthStride: Int,
        b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        (self.rows, self.lanes, self.depth) = (rows, lanes, depth)
        (self.a, self.aRowStride, self.aDepthStride) = (a, aRowStride, aDepthStride)
        (self.b, self.ldb, self.c, self.ldc, self.accumulate) = (b, ldb, c, ldc, accumulate)
    }
}

extension TileKernels {
    /// `c (+)= a · b` as described by ``GemmOperands``.
    @inlinable public static func gemm(_ operands: GemmOperands) { perform(.gemm(operands)) }

    /// The dot products described by ``DotRowsOperands``.
    @inlinable public static func dotRows(_ operands: DotRowsOperands) { perform(.dotRows(operands)) }

    /// One online-softmax step over a tile of base-2 scores (`rows` keys × `lanes` queries). Per query: the new
    /// running max, `correction = 2^(oldMax − newMax)`, `runningSum = runningSum·correction + Σ p`, and the tile
    /// is overwritten with `p = 2^(s − newMax)`. A query whose scores are all −∞ keeps max −∞ and gets p = 0.
    @inlinable public static func softmaxStep(
        tile: UnsafeMutablePointer<Float>, rows: Int, lanes: Int, ld: Int,
        runningMax: UnsafeMutablePointer<Float>, runningSum: UnsafeMutablePointer<Float>,
        correction: UnsafeMutablePointer<Float>
    ) {
        perform(
            .softmaxStep(
                tile: tile, rows: rows, lanes: lanes, ld: ld, runningMax: runningMax, runningSum: runningSum,
                correction: correction))
    }

    /// `c[i*ldc + j] *= factor[j]`.
    @inlinable public static func scaleColumns(
        c: UnsafeMutablePointer<Float>, rows: Int, lanes: Int, ldc: Int, factor: UnsafePointer<Float>
    ) {
        perform(.scaleColumns(c: c, rows: rows, lanes: lanes, ldc: ldc, factor: factor))
    }

    /// Recomputes probabilities in place, `tile[i*ld + j] = 2^(tile[i*ld + j] − lse2[j])`; `lse2` is the base-2
    /// log-sum-exp with +∞ for empty rows, so their probabilities come out 0.
    @inlinable public static func probabilities(
        tile: UnsafeMutablePointer<Float>, rows: Int, lanes: Int, ld: Int, lse2: UnsafePointer<Float>
    ) {
        perform(.probabilities(tile: tile, rows: rows, lanes: lanes, ld: ld, lse2: lse2))
    }

    /// Score gradients in place: `dp[i*ld + j] = p[i*ld + j] · (dp[i*ld + j] − delta[j])`, 0 where p is 0, then
    /// times `slope[i*ld + j]` (a score mod's derivative) where that is not 0: at a masked score the difference
    /// may overflow and the slope be undefined.
    @inlinable public static func scoreGradient(
        p: UnsafePointer<Float>, dp: UnsafeMutablePointer<Float>, rows: Int, lanes: Int, ld: Int,
        delta: UnsafePointer<Float>, slope: UnsafePointer<Float>? = nil
    ) {
        perform(.scoreGradient(p: p, dp: dp, rows: rows, lanes: lanes, ld: ld, delta: delta, slope: slope))
    }

    /// A scaled tanh and its derivative in one pass, as described by ``ScaledTanhOperands``: soft-capping
    /// `cap · tanh(score / cap)` without running a mod program.
    @inlinable public static func scaledTanh(_ operands: ScaledTanhOperands) { perform(.scaledTanh(operands)) }
}
