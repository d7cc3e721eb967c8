/// Table gradients summed so that every run gives the same bits.
///
/// Kernels add each pending sum to a slot of three 64-bit fixed-point integers, in units of 2⁻⁸, 2⁻⁴⁰ and 2⁻⁷²
/// (the Float32 value splits into them exactly, down to 2⁻⁷²), with integer atomics: integer addition is
/// associative, so the totals do not depend on the order in which CTAs add. A fourth word, a Float32 sum, takes the
/// values the integers cannot hold (NaN, ±∞, magnitudes from 2⁵² up), whose sum is order-independent only for the
/// non-finite ones. ``TableGradientKernel`` then turns each slot into the Float32 gradient.
enum TableGradientSum {
    /// Bytes of one element's slot: three `long long` words and the Float32 overflow sum, padded.
    static let slotBytes = 32

    /// `fa_table_gradient_add(slot, value)`; needs ``CUDAPrelude``.
    static let deviceFunction = """
        FA_INLINE void fa_table_gradient_add(long long* slot, float value) {
            const double x = (double)value;
            if (!(fabs(x) < 4503599627370496.0)) {  // NaN, ±inf, |x| >= 2^52
                atomicAdd((float*)(slot + 3), value);
                return;
            }
            const double high = rint(x * 256.0);
            const double rest = x - high * 0.00390625;
            const double middle = rint(rest * 1099511627776.0);
            const double low = rint((rest - middle * 9.094947017729282e-13) * 4722366482869645213696.0);
            atomicAdd((fa_u64*)slot, (fa_u64)(long long)high);
            atomicAdd((fa_u64*)slot + 1, (fa_u64)(long long)middle);
            atomicAdd((fa_u64*)slot + 2, (fa_u64)(long long)low);
        }

        """
}

/// Turns the fixed-point slots of one table's gradient into Float32, adding to what `gradient` holds when `adding`
/// is nonzero (a packed backward summing its sequences, in order); a thread per element.
struct TableGradientKernel: GeneratedKernel {
    static let threads = 256

    var name: String { "fa_table_gradient_finish" }

    /// `sums, gradient, count, adding`.
    static let signature = KernelSignature<TableGradientOperands>([
        .pointer("sums", "long long") { $0.sums }, .pointer("gradient", "float", readOnly: false) { $0.gradient },
        .int64("count") { $0.count }, .int32("adding") { $0.adding ? 1 : 0 },
    ])

    var source: String {
        CUDAPrelude.source + """
            extern "C" __global__ void __launch_bounds__(\(Self.threads))
            \(name)(\(Self.signature.declaration)) {
                const long long i = (long long)blockIdx.x * \(Self.threads) + threadIdx.x;
                if (i >= count) return;
                const long long* slot = sums + 4 * i;
                const float overflow = *(const float*)(slot + 3);
                const double exact = (double)slot[0] * 0.00390625 + (double)slot[1] * 9.094947017729282e-13
                    + (double)slot[2] * 2.117582368135751e-22;
                const float value = (float)exact + overflow;
                gradient[i] = adding ? gradient[i] + value : value;
            }

            """
    }

    /// The grid for `count` elements.
    static func blocks(_ count: Int) -> Int { max(1, (count + threads - 1) / threads) }
}

/// A ``TableGradientKernel`` launch's operands.
struct TableGradientOperands {
    var sums: UInt64
    var gradient: UInt64
    var count: Int
    var adding: Bool
}
