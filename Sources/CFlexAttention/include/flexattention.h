/*
 * flexattention.h: the C interface of FlexAttention for Swift.
 *
 * Exact attention (tiled, online softmax) with programmable score mods and masks, on the CPU and on NVIDIA GPUs,
 * over DLPack tensors. The library is `libflexattention.so` (`swift build -c release`, or `--product flexattention`
 * alone; scripts/build-gpu-bundle.sh links the Swift runtime in, for machines without Swift).
 *
 * Conventions
 * - Every function that can fail returns an fa_status. FA_OK is 0; on any other value the call changed nothing the
 *   caller can see (no output was written, no object was made) and fa_last_error() holds a one-line message.
 * - Input tensors are borrowed `const DLTensor *`: the `dl_tensor` member of a DLManagedTensor or of a
 *   DLManagedTensorVersioned, or a DLTensor of the caller's own. They are read during the call (CPU) or by work
 *   queued on the call's stream (CUDA); keep them alive until that work has run. Any strides and byte offsets;
 *   NULL strides mean compact row-major; the stride of an axis of extent 1 is ignored (it addresses nothing). Data
 *   must be aligned to the element size. Data types: float32, float16, bfloat16 for Q/K/V; float32 for the
 *   log-sum-exp; int32 or int64 for lengths and page tables. Device types: kDLCPU and kDLCUDAHost are host memory,
 *   kDLCUDA device memory; kDLCUDAManaged is read as host memory by CPU calls and as device memory by CUDA calls.
 * - Sizes (batch, heads, lengths, head dims) are at most INT32_MAX. On the CPU, batch, query_length and key_length
 *   may be 0 (empty attention: O = 0, LSE = -inf, zero gradients); CUDA tensors must have every extent positive.
 * - Output tensors are new DLManagedTensorVersioned (FA_DLPACK_VERSIONED) or DLManagedTensor (FA_DLPACK_LEGACY)
 *   objects, written as `void *` to the out-parameters; the caller owns each one and calls its deleter once, after
 *   which the memory is released (on CUDA, stream-ordered on the call's stream).
 * - `stream` is a CUstream (NULL: the legacy default stream); it is ignored on the CPU. CUDA calls queue their work
 *   on it and return without waiting, except where a function says it synchronises. The library uses the device's
 *   primary context, as the CUDA runtime and PyTorch do.
 * - Objects (fa_block_mask, fa_attention) may be used from any thread; calls on one object from several threads are
 *   allowed. Free each object once, after the work queued with it has been ordered before any reuse of its memory.
 * - Tensors are logical [B, H, S, D]: BSHD memory is passed as a permuted view (shape [B, H, S, D] with the strides of
 *   the BSHD buffer).
 *
 * The DLPack structs below are defined here from the DLPack specification (version 1.0); when dlpack.h was included
 * first, its definitions are used instead.
 */
#ifndef FLEXATTENTION_H
#define FLEXATTENTION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- DLPack ---------------------------------------------------------------------------------------------------- */
#ifndef DLPACK_DLPACK_H_
#define DLPACK_DLPACK_H_
#define DLPACK_MAJOR_VERSION 1
#define DLPACK_MINOR_VERSION 0

/* Where a tensor's memory lives. Only the values this library reads are listed. */
typedef enum {
    kDLCPU = 1,
    kDLCUDA = 2,
    kDLCUDAHost = 3,
    kDLCUDAManaged = 13,
} DLDeviceType;

typedef struct {
    DLDeviceType device_type;
    int32_t device_id;
} DLDevice;

typedef enum {
    kDLInt = 0,
    kDLUInt = 1,
    kDLFloat = 2,
    kDLOpaqueHandle = 3,
    kDLBfloat = 4,
    kDLComplex = 5,
    kDLBool = 6,
} DLDataTypeCode;

/* An element type: `code` a DLDataTypeCode, `bits` per lane, `lanes` per element (1 here). */
typedef struct {
    uint8_t code;
    uint8_t bits;
    uint16_t lanes;
} DLDataType;

/* A strided view of memory. `strides` count elements, not bytes; NULL means compact row-major. */
typedef struct {
    void *data;
    DLDevice device;
    int32_t ndim;
    DLDataType dtype;
    int64_t *shape;
    int64_t *strides;
    uint64_t byte_offset;
} DLTensor;

/* The DLPack 0.x exchange object. */
typedef struct DLManagedTensor {
    DLTensor dl_tensor;
    void *manager_ctx;
    void (*deleter)(struct DLManagedTensor *self);
} DLManagedTensor;

typedef struct {
    uint32_t major;
    uint32_t minor;
} DLPackVersion;

#define DLPACK_FLAG_BITMASK_READ_ONLY (1UL << 0UL)
#define DLPACK_FLAG_BITMASK_IS_COPIED (1UL << 1UL)

/* The DLPack 1.x exchange object. */
typedef struct DLManagedTensorVersioned {
    DLPackVersion version;
    void *manager_ctx;
    void (*deleter)(struct DLManagedTensorVersioned *self);
    uint64_t flags;
    DLTensor dl_tensor;
} DLManagedTensorVersioned;
#endif /* DLPACK_DLPACK_H_ */

/* ---- Status and errors ----------------------------------------------------------------------------------------- */
#define FA_ABI_VERSION 2

typedef enum {
    FA_OK = 0,
    /* A tensor, size or option that does not fit the call (shape, dtype, device, strides, a NULL pointer). */
    FA_ERROR_INVALID_ARGUMENT = 1,
    /* A score mod or mask that does not parse or check (syntax, types, a table indexed past its end). */
    FA_ERROR_MOD = 2,
    /* The CUDA driver or NVRTC could not be loaded, or failed. */
    FA_ERROR_CUDA = 3,
    /* Host or device memory ran out. */
    FA_ERROR_OUT_OF_MEMORY = 4,
    /* A valid request this build or device cannot run (a head dim no kernel takes, CUDA on a machine without it). */
    FA_ERROR_UNSUPPORTED = 5,
} fa_status;

/* The ABI version this library implements (FA_ABI_VERSION when built from this header). */
int32_t fa_abi_version(void);

/* The message of the last failed call on this thread, or "" when none failed. Valid until the next call on this
 * thread; never NULL. */
const char *fa_last_error(void);

/* ---- Mods -------------------------------------------------------------------------------------------------------- */
/* A table a mod reads by name: int32/int64 elements make an Int table, float32/float16/bfloat16 a Float table. The
 * values are copied (from the CPU or a CUDA device; a device table is read with a synchronising copy) when the
 * object that takes it is made, or by each fa_decode call. */
typedef struct {
    const char *name;
    const DLTensor *values;
} fa_table;

typedef enum {
    FA_SCALAR_INT = 0,
    FA_SCALAR_FLOAT = 1,
} fa_scalar_kind;

/* A named scalar a mod's text reads (a lifted argument: a new value never recompiles a kernel). */
typedef struct {
    const char *name;
    int32_t kind; /* fa_scalar_kind */
    int64_t int_value;
    double float_value;
} fa_parameter;

/* A mod in the textual form (see the documentation's "Writing mods"), e.g. "q >= kv && q - kv < w" or
 * "score + bias[h, q - kv + 2047]", with the tables and parameters it names. `text` NULL or "" means no mod. */
typedef struct {
    const char *text;
    const fa_table *tables;
    int64_t table_count;
    const fa_parameter *parameters;
    int64_t parameter_count;
} fa_mod;

/* ---- Block masks ------------------------------------------------------------------------------------------------- */
typedef struct fa_block_mask fa_block_mask;

/* Builds the block mask of `mask` over `batch` x `heads` x `query_length` x `key_length` (batch or heads 1 when the
 * mask reads no `b` or `h`: it then serves any batch or head count). Blocks are 64 x 64 (the CPU's); attention calls
 * on the GPU rebuild it at their kernels' block sizes from the same mask. */
fa_status fa_block_mask_create(const fa_mod *mask, int64_t batch, int64_t heads, int64_t query_length,
                               int64_t key_length, fa_block_mask **out);

/* The fraction of blocks the mask removes, in [0, 1]. */
fa_status fa_block_mask_sparsity(const fa_block_mask *mask, double *out);

/* The mask's textual form, as the library prints it (a string owned by the mask). */
const char *fa_block_mask_description(const fa_block_mask *mask);

void fa_block_mask_free(fa_block_mask *mask);

/* ---- Prepared attention ------------------------------------------------------------------------------------------ */
typedef enum {
    FA_CAUSAL_NONE = 0,
    FA_CAUSAL_TOP_LEFT = 1,     /* q >= kv */
    FA_CAUSAL_BOTTOM_RIGHT = 2, /* q + key_length - query_length >= kv (the last query sees every key) */
} fa_causal;

typedef enum {
    FA_DLPACK_VERSIONED = 0, /* outputs are DLManagedTensorVersioned * */
    FA_DLPACK_LEGACY = 1,    /* outputs are DLManagedTensor * */
} fa_output_kind;

/* One attention problem: sizes, dtype, device and options. Q is [B, Hq, Sq, D], K [B, Hkv, Skv, D], V [B, Hkv, Skv,
 * Dv] with Hq a multiple of Hkv (grouped-query attention when Hkv < Hq). */
typedef struct {
    DLDevice device; /* kDLCPU, or kDLCUDA with the GPU's ordinal */
    DLDataType dtype; /* of Q, K, V and O */
    int64_t batch, query_heads, key_value_heads, query_length, key_length, head_dim, value_dim;
    double scale;    /* a positive finite number, or 0 for 1/sqrt(head_dim) */
    int32_t causal;  /* fa_causal */
    fa_mod score_mod;  /* reads score, b, h, q, kv, q_len, kv_len */
    fa_mod mask_mod;   /* a mask given as text; ignored when block_mask is set */
    const fa_block_mask *block_mask; /* or NULL; borrowed only while fa_attention_create runs */
    const float *sinks; /* query_heads logits, or NULL */
    int64_t sink_count;
    int32_t includes_backward; /* nonzero to prepare the backward pass too */
    /* Nonzero lets the backward add dQ's partial sums in any order where that is faster (an H100 above head_dim
     * 128), as cuDNN's backward does: dQ's last bits may then differ between runs. Zero: the same bits every run. */
    int32_t any_order_gradients;
} fa_attention_desc;

typedef struct fa_attention fa_attention;

/* Prepares attention for `desc`: checks the options against the sizes, builds the block mask and, on CUDA, finds or
 * compiles the kernels and uploads the mods' arguments (a synchronising upload, once). */
fa_status fa_attention_create(const fa_attention_desc *desc, fa_attention **out);

void fa_attention_free(fa_attention *attention);

/* The Float tables the score mod reads, whose gradients the backward pass returns, in that order. The name is owned
 * by the attention; NULL for an index outside [0, count) (the count of a NULL attention is 0). */
int64_t fa_attention_gradient_table_count(const fa_attention *attention);
const char *fa_attention_gradient_table_name(const fa_attention *attention, int64_t index);

/* O = softmax(scale * Q K^T, masked and modded) V and its log-sum-exp (natural log, float32 [B, Hq, Sq]).
 * `tables` (may be NULL) replaces the values of the score mod's Float tables for this call and later ones, read on
 * the call's device in stream order (no synchronisation; same shapes as at creation). Each is float32 and names one
 * of the tables fa_attention_gradient_table_name lists; unnamed tables keep their values. On the CPU they are CPU
 * tensors. On CUDA a tensor on the attention's device must be row-major contiguous (copied device to device); a CPU
 * tensor is staged through stream-ordered device memory (a pageable copy, which the driver may order after the
 * stream's earlier work).
 * The outputs are new tensors: O contiguous [B, Hq, Sq, Dv] in the inputs' dtype, LSE contiguous float32. */
fa_status fa_attention_forward(fa_attention *attention, const DLTensor *query, const DLTensor *key,
                               const DLTensor *value, const fa_table *tables, int64_t table_count, void *stream,
                               int32_t output_kind, void **output, void **log_sum_exp);

/* The forward pass into caller tensors: O any strides, LSE contiguous. */
fa_status fa_attention_forward_into(fa_attention *attention, const DLTensor *query, const DLTensor *key,
                                    const DLTensor *value, const fa_table *tables, int64_t table_count,
                                    DLTensor *output, DLTensor *log_sum_exp, void *stream);

/* Gradients of a loss given dO, from the forward pass's O and LSE (recomputed probabilities; O and dO in the inputs'
 * dtype, LSE contiguous as forward writes it). Deterministic (the same bits on every run) on the CPU and on CUDA,
 * table gradients included. Needs includes_backward at creation.
 * `table_gradients` has fa_attention_gradient_table_count entries (may be NULL when that is 0); `sink_gradient` may
 * be NULL when there are no sinks, else receives float32 [Hq]. */
fa_status fa_attention_backward(fa_attention *attention, const DLTensor *query, const DLTensor *key,
                                const DLTensor *value, const DLTensor *output, const DLTensor *log_sum_exp,
                                const DLTensor *output_gradient, const fa_table *tables, int64_t table_count,
                                void *stream, int32_t output_kind, void **query_gradient, void **key_gradient,
                                void **value_gradient, void **table_gradients, void **sink_gradient);

/* ---- Decode against a KV cache ----------------------------------------------------------------------------------- */
/* A decoding step: with L[b] = lengths[b] + Sn (the length after the append below), each sequence b's Sq new queries
 * sit at positions L[b] - Sq + i and see cache positions below L[b] (with `causal`, only those at or before their
 * own). Mods see those absolute positions and q_len = kv_len = L[b]. It runs where the key cache is: on its GPU for
 * kDLCUDA, else on the CPU.
 *
 * The cache is contiguous (`page_table` NULL; keys [B, Hkv, capacity, D], any strides) or paged (keys
 * [pages, page_size, Hkv, D], `page_table` int32/int64 [B, max_pages] of page indices, -1 unassigned).
 * `new_keys`/`new_values` ([B, Hkv, Sn, D], or NULL) are first written into the cache at each sequence's length,
 * and the lengths grow by Sn (the caller's `lengths` tensor is not modified; `lengths` counts tokens before the
 * append). Paged caches must have pages assigned for the appended positions.
 * `lengths` and `page_table` are read on the host: CUDA tensors are copied with a synchronising copy, so pass CPU
 * tensors to keep the call asynchronous. The query is [B, Hq, Sq, D] in the cache's dtype; the outputs O
 * [B, Hq, Sq, Dv] in the cache's dtype and LSE float32 [B, Hq, Sq], as new tensors.
 * On CUDA the prepared kernels and uploaded mod arguments of a step (a decode plan) are kept for the 32 most recently
 * used descriptions (device, cache layout and dtype, page size and count, capacity, query heads and length, scale,
 * causal, sinks, and the mods' text, parameters and table contents), so repeated steps of a model reuse one; a step
 * whose tables hold new values makes a new plan (its kernels are compiled once and shared). */
typedef struct {
    double scale;  /* 0 for 1/sqrt(head_dim) */
    int32_t causal; /* nonzero: query i sees keys up to its own position */
    fa_mod score_mod;
    fa_mod mask_mod;
    const float *sinks;
    int64_t sink_count;
} fa_decode_desc;

fa_status fa_decode(const fa_decode_desc *desc, const DLTensor *query, const DLTensor *key_cache,
                    const DLTensor *value_cache, const DLTensor *lengths, const DLTensor *page_table,
                    const DLTensor *new_keys, const DLTensor *new_values, void *stream, int32_t output_kind,
                    void **output, void **log_sum_exp);

#ifdef __cplusplus
}
#endif
#endif /* FLEXATTENTION_H */
