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
            // A warp's 16 x 64 tile (zeroed first) of A Bt: A is 16 rows of K elements at `a`, B 64 rows at `b`
            // (shared memory, row pitches `lda`, `ldb`). acc[j][e] holds row lane / 4 (+8 for e >= 2), column
            // 8j + 2 (lane % 4) + e % 2.
            template <int K>
            FA_INLINE void fa_warp_rows_times_rows(float (&acc)[8][4], const fa_u16* a, int lda, const fa_u16* b, int ldb) {
                const int lane = threadIdx.x % 32;
                #pragma unroll
                for (int j = 0; j < 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
                #pragma unroll
                for (int kk = 0; kk < K / 16; ++kk) {
                    fa_u32 fa[4];
                    fa_ldmatrix_x4(fa, a + (lane % 8 + 8 * (lane / 8 % 2)) * lda + kk * 16 + 8 * (lane / 16));
                    #pragma unroll
                    for (int n = 0; n < 4; ++n) {
                        fa_u32 fb[4];
                        fa_ldmatrix_x4(fb, b + (n * 16 + lane % 8 + 8 * (lane / 16)) * ldb + kk * 16 + 8 * (lane / 8 % 2));
                        fa_mma(acc[2 * n], fa, fb[0], fb[1]);
                        fa_mma(acc[2 * n + 1], fa, fb[2], fb[3]);
                    }
                }
            }
            // Row lane / 4 (r = 0) or lane / 4 + 8 (r = 1) of a warp's 16 x N tile, times `factor`, into N contiguous
            // elements at `row` (this thread's columns 8j + 2 (lane % 4) + {0, 1}).
            template <int N>
            FA_INLINE void fa_store_tile_row(fa_u16* row, const float (&acc)[N / 8][4], int r, float factor) {
                const int lane = threadIdx.x % 32;
                #pragma unroll
                for (int j = 0; j < N / 8; ++j) {
                    row[8 * j + 2 * (lane % 4)] = \(dtype.cudaFromFloat("acc[j][2 * r] * factor"));
                    row[8 * j + 2 * (lane % 4) + 1] = \(dtype.cudaFromFloat("acc[j][2 * r + 1] * factor"));
                }
            }
            // acc (16 x N) += P B: P a 16 x 64 tile in the layout above, rounded to 16 bits as the A operand, and B
            // 64 rows of N elements at `b` (shared memory, row pitch `ldb`).
            template <int N>
            FA_INLINE void fa_warp_tile_times_rows(float (&acc)[N / 8][4], const float (&p)[8][4], const fa_u16* b, int ldb) {
                const int lane = threadIdx.x % 32;
                #pragma unroll
                for (int kk = 0; kk < 4; ++kk) {
                    const fa_u32 a[4] = {fa_pack(p[2 * kk][0], p[2 * kk][1]), fa_pack(p[2 * kk][2], p[2 * kk][3]),
                                         fa_pack(p[2 * kk + 1][0], p[2 * kk + 1][1]), fa_pack(p[2 * kk + 1][2], p[2 * kk + 1][3])};
                    #pragma unroll
                    for (int n = 0; n < N / 16; ++n) {
                        fa_u32 fb[4];
                        fa_ldmatrix_x4_trans(fb, b + (kk * 16 + lane % 8 + 8 * (lane / 8 % 2)) * ldb + n * 16 + 8 * (lane / 16));
                        fa_mma(acc[2 * n], a, fb[0], fb[1]);
                        fa_mma(acc[2 * n + 1], a, fb[2], fb[3]);
                    }
                }
            }

            """
    }
}
