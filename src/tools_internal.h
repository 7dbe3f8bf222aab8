/*
 * tools_internal.h - the library internals the command line (tools/) may
 * use, and the only header of src/ that tools include (the Makefile gives
 * them no -Isrc; they name it as "../src/tools_internal.h"): error filling,
 * whole-file reading, the clock and the seeded generator (util.h) and the
 * JSON reader (json.h). Anything else a tool needs becomes public API in
 * include/ instead.
 */
#ifndef GPT_TOOLS_INTERNAL_H
#define GPT_TOOLS_INTERNAL_H

#include "json.h"
#include "util.h"

#endif
