/// Merges up to ``partsPerLaunch`` attention results over disjoint key sets, row by row, by their log-sum-exps
/// (``LogSumExpMerge`` through ``CUDALogSumExpMerge``): `LSE = log Σᵢ e^LSEᵢ`, `O = Σᵢ e^(LSEᵢ − LSE) · Oᵢ`, summed
/// in Float32 in part order. One kernel serves every dtype and layout: each part's O is read, and the merged O
/// written, through its own strides and a dtype code (``DType/mergeCode``); log-sum-exps are Float32, any strides.
///
/// One warp per row. Each element is read and written by one thread, reads before its write, and the row's
/// log-sum-exp is written after the warp has read every part's: so the merged result may be written over one of
/// the parts (the same views), which a chain of launches does with its Float32 running result.
struct MergeKernel: GeneratedKernel {
    /// Parts one launch reads; more are merged by chaining launches.
    static let partsPerLaunch = 8
    static let threads = 128
    static let rowsPerBlock = threads / 32

    var name: String { "fa_merge_attention_\(Self.partsPerLaunch)" }

    /// For each part `p`: `O<p>, o<p>s0…3, O<p>dtype, L<p>, l<p>s0…2`; then `parts`, the merged result's `O, os0…3,
    /// Odtype, LSE, ls0…2`, and `Hq, Sq, Dv, rows`. Parts past `parts` are null and never read.
    static let signature: KernelSignature<MergeOperands> = {
        typealias P = KernelParameter<MergeOperands>
        /// `O<suffix>`, its strides `o<suffix>s0…3`, `O<suffix>dtype`, the log-sum-exp `logSumExp`, `l<suffix>s0…2`.
        func rows(
            _ suffix: String, logSumExp: String, readOnly: Bool, _ value: @escaping @Sendable (MergeOperands) -> MergeRows?
        ) -> [P] {
            [.pointer("O\(suffix)", "void", readOnly: readOnly, restricted: false) { value($0)?.output.address ?? 0 }]
                + P.strides("o\(suffix)s") { value($0)?.output.strides ?? [0, 0, 0, 0] }
                + [.int32("O\(suffix)dtype") { value($0)?.dtypeCode ?? 0 },
                   .pointer(logSumExp, "float", readOnly: readOnly, restricted: false) { value($0)?.logSumExp ?? 0 }]
                + (0..<3).map { axis in .int64("l\(suffix)s\(axis)") { value($0)?.logSumExpStrides[axis] ?? 0 } }
        }
        let parts = (0..<partsPerLaunch).flatMap { p in
            rows("\(p)", logSumExp: "L\(p)", readOnly: true) { p < $0.parts.count ? $0.parts[p] : nil }
        }
        return KernelSignature(
            parts + [.int32("parts") { $0.parts.count }] + rows("", logSumExp: "LSE", readOnly: false) { $0.merged }
                + [.int32("Hq") { $0.queryHeads }, .int32("Sq") { $0.queryLength }, .int32("Dv") { $0.valueDim },
                   .int64("rowCount") { $0.rows }])
    }()

    var source: String {
        let parts = 0..<Self.partsPerLaunch
        func each(_ line: (Int) -> String, indent: Int) -> String {
            parts.map(line).joined(separator: "\n" + String(repeating: " ", count: indent))
        }
        // Part p's row, and its element c: offsets through its own strides.
        func row(_ p: Int) -> String { "b * l\(p)s0 + h * l\(p)s1 + q * l\(p)s2" }
        func element(_ p: Int) -> String { "b * o\(p)s0 + h * o\(p)s1 + q * o\(p)s2 + c * o\(p)s3" }
        return CUDAPrelude.source + CUDALogSumExpMerge.source + CUDAElementAccess.source + """
            extern "C" __global__ void __launch_bounds__(\(Self.threads))
            \(name)(\(Self.signature.declaration)) {
                const long long row = (long long)blockIdx.x * \(Self.rowsPerBlock) + threadIdx.x / 32;
                if (row >= rowCount) return;
                const long long b = row / ((long long)Hq * Sq), h = row / Sq % Hq, q = row % Sq;
                float lse[\(Self.partsPerLaunch)], weight[\(Self.partsPerLaunch)];
                fa_merge merge = fa_merge_begin();
                \(each({ "lse[\($0)] = parts > \($0) ? L\($0)[\(row($0))] : fa_negative_infinity();" }, indent: 4))
                #pragma unroll
                for (int p = 0; p < \(Self.partsPerLaunch); ++p) fa_merge_reference(merge, lse[p]);
                #pragma unroll
                for (int p = 0; p < \(Self.partsPerLaunch); ++p) fa_merge_add(merge, lse[p]);
                #pragma unroll
                for (int p = 0; p < \(Self.partsPerLaunch); ++p) weight[p] = fa_merge_weight(merge, lse[p]);
                for (int c = threadIdx.x % 32; c < Dv; c += 32) {
                    float sum = 0.0f;
                    // Parts past `parts` are null: a poisoned row's NaN weights must not reach them.
                    \(each({ p in
                        "if (parts > \(p) && weight[\(p)] != 0.0f)"
                            + " sum += weight[\(p)] * fa_load_element(O\(p), \(element(p)), O\(p)dtype);"
                    }, indent: 8))
                    fa_store_element(O, b * os0 + h * os1 + q * os2 + c * os3, Odtype, sum);
                }
                __syncwarp();  // every lane has read the parts' LSE before the merged one may replace one of them
                if (threadIdx.x % 32 == 0) LSE[b * ls0 + h * ls1 + q * ls2] = fa_merge_log_sum_exp(merge);
            }

            """
    }
}

/// One side of a merge: an attention result's O (address, four strides, dtype) and its Float32 log-sum-exp
/// (address, three strides).
struct MergeRows {
    var output: TensorOperand
    var dtypeCode: Int
    var logSumExp: UInt64
    var logSumExpStrides: [Int]

    init(output: TensorOperand, dtypeCode: Int, logSumExp: UInt64, logSumExpStrides: [Int]) {
        (self.output, self.dtypeCode, self.logSumExp, self.logSumExpStrides) =
            (output, dtypeCode, logSumExp, logSumExpStrides)
    }

    init(_ result: DeviceAttentionOutput) {
        self.init(
            output: TensorOperand(result.output), dtypeCode: result.output.dtype.mergeCode,
            logSumExp: result.logSumExp.address, logSumExpStrides: result.logSumExp.strides)
    }
}

/// A ``MergeKernel`` launch's operands.
struct MergeOperands {
    /// One to ``MergeKernel/partsPerLaunch`` parts, in merge order.
    var parts: [MergeRows]
    var merged: MergeRows
    var queryHeads: Int
    var queryLength: Int
    var valueDim: Int
    var rows: Int
}

extension DType {
    /// The code ``MergeKernel`` reads a dtype by.
    var mergeCode: Int {
        switch self {
        case .float32: 0
        case .float16: 1
        case .bfloat16: 2
        }
    }
}
