/*
 * flex_nccl.h: the two NCCL signatures Swift cannot spell. ncclCommInitRank takes the 128-byte ncclUniqueId by
 * value, which the C ABI passes differently from a pointer (on the stack on x86-64, as a pointer to a copy on
 * AArch64), and a Swift tuple cannot appear in a @convention(c) type. Declaring the struct here lets Clang lower
 * the call. NCCL's own header is not needed: NCCL is loaded at run time with dlopen.
 */
#ifndef FLEX_NCCL_H
#define FLEX_NCCL_H

#ifdef __cplusplus
extern "C" {
#endif

/* ncclUniqueId: NCCL_UNIQUE_ID_BYTES (128) opaque bytes naming a communicator's bootstrap root. */
typedef struct {
    char internal[128];
} flex_nccl_unique_id;

/* ncclComm_t, opaque. */
typedef struct flex_nccl_comm *flex_nccl_comm_t;

/* ncclResult_t ncclGetUniqueId(ncclUniqueId *uniqueId) */
typedef int (*flex_nccl_get_unique_id_fn)(flex_nccl_unique_id *unique_id);

/* ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank): the ID by value. */
typedef int (*flex_nccl_comm_init_rank_fn)(flex_nccl_comm_t *comm, int nranks, flex_nccl_unique_id comm_id, int rank);

#ifdef __cplusplus
}
#endif
#endif /* FLEX_NCCL_H */
