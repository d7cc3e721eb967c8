/// Warp-level tensor-core helpers in inline PTX (sm_80 and later): `ldmatrix` loads of 8×8 tiles of 16-bit elements
/// from shared memory and the `m16n8k16` MMA with Float32 accumulation, for one 16-bit input type.
enum TensorCoreHelpers {
    /// The PTX type name of a 16-bit input dtype.
    static func ptxType(_ dtype: DType) -> String {
        dtype == .bfloat16 ? "bf16" : "f16"
    }

    static func source(_ dtype: DType) -> String {
        let type = ptxType(dtype)
        return """
            // Four 8x8 tiles; lane l gives the address of row l % 8 of tile l / 8.
            FA_INLINE void fa_ldmatrix_x4(fa_u32 (&r)[4], const void* address) {
                const fa_u32 a = (fa_u32)__cvta_generic_to_shared(address);
                asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                             : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
            }
            FA_INLINE void fa_ldmatrix_x4_trans(fa_u32 (&r)[4], const void* address) {
                const fa_u32 a = (fa_u32)__cvta_generic_to_shared(address);
                asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                             : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
            }
            // d += a (16x16, row-major) * b (16x8, column-major), Float32 accumulators.
            FA_INLINE void fa_mma(float (&d)[4], const fa_u32 (&a)[4], fa_u32 b0, fa_u32 b1) {
                asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.\(type).\(type).f32 "
                             "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                             : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                             : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
            }
            // Two floats as a pair of 16-bit values, `low` in the low half (the lower column).
            FA_INLINE fa_u32 fa_pack(float low, float high) {
                fa_u32 r;
                asm("cvt.rn.\(type)x2.f32 %0, %1, %2;" : "=r"(r) : "f"(high), "f"(low));
                return r;
            }

            """
    }
}
