/*
 * backend.c - the registry of compiled-in backends and the shared error
 * helper. The only place that knows whether CUDA was compiled in.
 */
#include "backend.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#ifndef GPT_HAVE_CUDA
int gpt_cuda_backend_create(gpt_backend **out, const gpt_runtime *rt, gpt_error *err) {
    (void)rt;
    *out = NULL;
    return gpt_fail(err, GPT_ERR_INVALID,
                    "--device cuda: this build has no CUDA backend (rebuild with make CUDA=1)");
}
int gpt_cuda_backend_probe(void) { return 0; }
#endif

static const char *const names[] = {"cpu",
#ifdef GPT_HAVE_CUDA
                                    "cuda",
#endif
                                    NULL};

const char *const *gpt_backend_names(void) { return names; }

int gpt_backend_available(const char *name) {
    if (!strcmp(name, "cpu")) return 1;
    if (!strcmp(name, "cuda")) return gpt_cuda_backend_probe();
    return 0;
}

static int create(gpt_backend **out, const gpt_runtime *rt, gpt_error *err) {
    const char *dev = rt && rt->device ? rt->device : "auto";
    if (!strcmp(dev, "auto")) dev = gpt_cuda_backend_probe() ? "cuda" : "cpu";
    if (!strcmp(dev, "cpu")) return gpt_cpu_backend_create(out, rt, err);
    if (!strcmp(dev, "cuda")) {
        if (!gpt_cuda_backend_probe()) {
#ifdef GPT_HAVE_CUDA
            return gpt_fail(err, GPT_ERR_INVALID,
                            "--device cuda: no usable CUDA device found (try --device cpu)");
#else
            return gpt_cuda_backend_create(out, rt, err);
#endif
        }
        return gpt_cuda_backend_create(out, rt, err);
    }
    return gpt_fail(err, GPT_ERR_INVALID, "device '%s' is unknown: use cpu, cuda or auto", dev);
}

int gpt_backend_create(gpt_backend **out, const gpt_runtime *rt, gpt_error *err) {
    *out = NULL;
    int rc = create(out, rt, err);
#ifdef GPT_TEST_BUILD
    if (!rc && (rc = gpt_backend_check_wrap(*out, err))) *out = NULL;
#endif
    return rc;
}

void gpt_backend_destroy(gpt_backend *be) {
    if (be) be->ops->destroy(be);
}

void gpt_backend_fail(gpt_backend *be, int code, const char *fmt, ...) {
    if (be->err.code) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(be->err.msg, sizeof be->err.msg, fmt, ap);
    va_end(ap);
    be->err.code = code;
}
