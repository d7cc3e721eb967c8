#ifndef FLEXATTENTION_PREFETCH_H
#define FLEXATTENTION_PREFETCH_H

/// Asks the CPU to start bringing the cache line that holds `address` into its caches for a read: Swift has no
/// prefetch of its own, and a decoding loop that computes between its loads leaves the memory idle without it.
static inline void flexattention_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }

#endif
