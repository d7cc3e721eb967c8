/*
 * flexattention_error_store.h: the storage behind fa_last_error(), internal to libflexattention (hidden symbols; not
 * part of the C interface). C holds it because Swift has no thread-local storage of its own.
 */
#ifndef FLEXATTENTION_ERROR_STORE_H
#define FLEXATTENTION_ERROR_STORE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes the message may hold, its terminating NUL included; longer messages are cut by the caller. */
#define FA_ERROR_STORE_CAPACITY 4096

/* Replaces this thread's message with the `length` bytes at `text` (at most FA_ERROR_STORE_CAPACITY - 1 are kept). */
__attribute__((visibility("hidden"))) void fa_error_store_set(const char *text, size_t length);

/* This thread's message, "" until one is set; never NULL. */
__attribute__((visibility("hidden"))) const char *fa_error_store_get(void);

#ifdef __cplusplus
}
#endif
#endif /* FLEXATTENTION_ERROR_STORE_H */
