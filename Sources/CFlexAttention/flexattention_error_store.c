#include "flexattention_error_store.h"

#include <string.h>

/* One message per thread, so that concurrent calls on other threads cannot overwrite the one a caller reads. */
static _Thread_local char message[FA_ERROR_STORE_CAPACITY];

void fa_error_store_set(const char *text, size_t length) {
    if (length > FA_ERROR_STORE_CAPACITY - 1) length = FA_ERROR_STORE_CAPACITY - 1;
    memcpy(message, text, length);
    message[length] = '\0';
}

const char *fa_error_store_get(void) { return message; }
