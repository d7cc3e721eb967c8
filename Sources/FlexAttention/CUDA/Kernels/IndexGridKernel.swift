/// A kernel that evaluates one ``IndexExpression`` at every point of a `[B, H, Q, KV]` grid and writes the values
/// as floats: the GPU half of checking an expression's emission against its CPU evaluation.
///
/// Signature (`N` = table count):
///
///     fa_grid_<name>(float* out, const float* scores, int B, int H, int Q, int KV,
///                    const int* ints, const float* floats, const int* t0, …, const int* t<N-1>)
///
/// One thread per element; `blockIdx.y` walks `b·H·Q + h·Q + q` rows, `x` covers `kv`.
public struct IndexGridKernel: Sendable {
    public let expression: IndexExpression
    public static let threadsPerBlock = 128

    public init(expression: IndexExpression) {
        self.expression = expression
    }

    public var name: String { "fa_grid_\(expression.name)" }

    /// The complete translation unit.
    public var source: String {
        let tables = expression.tables.indices.map { ", const int* __restrict__ t\($0)" }.joined()
        let value = expression.kind == .mask ? "((\(expression.cuda)) ? 1.0f : 0.0f)" : "(\(expression.cuda))"
        return CUDAPrelude.source + """
            extern "C" __global__ void __launch_bounds__(\(IndexGridKernel.threadsPerBlock))
            \(name)(float* __restrict__ out, const float* __restrict__ scores, int B, int H, int Q, int KV,
                    const int* __restrict__ ints, const float* __restrict__ floats\(tables)) {
                const int kv = blockIdx.x * blockDim.x + threadIdx.x;
                const long long row = blockIdx.y;
                if (kv >= KV || row >= (long long)B * H * Q) return;
                const int q = (int)(row % Q);
                const int h = (int)(row / Q % H);
                const int b = (int)(row / ((long long)Q * H));
                const long long element = row * KV + kv;
                const float score = scores[element];
                (void)b; (void)h; (void)score; (void)ints; (void)floats;
                out[element] = \(value);
            }

            """
    }
}
