/*
 * version.c - the library's version at run time, and the free() that
 * bindings in other languages call on memory the library handed over.
 */
#include <stdlib.h>

#include "gpt.h"

const char *gpt_version(void) { return GPT_VERSION; }

void gpt_free(void *p) { free(p); }
