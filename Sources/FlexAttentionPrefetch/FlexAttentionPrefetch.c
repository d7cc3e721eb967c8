// The target's one function is inline, in include/FlexAttentionPrefetch.h; SwiftPM needs a source file to build it.
#include "FlexAttentionPrefetch.h"
