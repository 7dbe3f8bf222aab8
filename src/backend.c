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

#ifndef GPT_HAVE_VULKAN
int gpt_vulkan_backend_create(gpt_backend **out, const gpt_runtime *rt, gpt_error *err) {
    (void)rt;
    *out = NULL;
    return gpt_fail(err, GPT_ERR_INVALID,
                    "--device vulkan: this build has no Vulkan backend (install libvulkan-dev "
                    "and glslc, then rebuild, or make VULKAN=1)");
}
int gpt_vulkan_backend_probe(void) { return 0; }
int gpt_vulkan_backend_probe_gpu(void) { return 0; }
#endif

static const char *const names[] = {"cpu",
#ifdef GPT_HAVE_CUDA
                                    "cuda",
#endif
#ifdef GPT_HAVE_VULKAN
                                    "vulkan",
#endif
                                    NULL};

static int is_vulkan(const char *dev) { return !strcmp(dev, "vulkan") || !strncmp(dev, "vulkan:", 7); }

int gpt_device_name_valid(const char *dev) {
    if (!dev) return 1;
    if (!strcmp(dev, "auto") || !strcmp(dev, "cpu") || !strcmp(dev, "cuda") || !strcmp(dev, "vulkan"))
        return 1;
    if (strncmp(dev, "vulkan:", 7) || !dev[7]) return 0;
    for (const char *p = dev + 7; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    return strlen(dev + 7) <= 3;
}

const char *const *gpt_backend_names(void) { return names; }

int gpt_backend_available(const char *name) {
    if (!strcmp(name, "cpu")) return 1;
    if (!strcmp(name, "cuda")) return gpt_cuda_backend_probe();
    if (is_vulkan(name)) return gpt_vulkan_backend_probe();
    return 0;
}

static int create(gpt_backend **out, const gpt_runtime *rt, gpt_error *err) {
    const char *dev = rt && rt->device ? rt->device : "auto";
    if (!strcmp(dev, "auto"))
        dev = gpt_cuda_backend_probe() ? "cuda" : gpt_vulkan_backend_probe_gpu() ? "vulkan" : "cpu";
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
    if (is_vulkan(dev)) {
        gpt_runtime r = {0};
        if (rt) r = *rt;
        r.device = dev;
        return gpt_vulkan_backend_create(out, &r, err);
    }
    return gpt_fail(err, GPT_ERR_INVALID,
                    "device '%s' is unknown: use cpu, cuda, vulkan, vulkan:N or auto", dev);
}

int gpt_backend_create(gpt_backend **out, const gpt_runtime *rt, gpt_error *err) {
    *out = NULL;
    int rc = create(out, rt, err);
#ifdef GPT_TEST_BUILD
    if (!rc && (rc = gpt_backend_check_wrap(*out, err))) *out = NULL;
#endif
    return rc;
}

int gpt_device_describe(const gpt_runtime *rt, char *buf, size_t len, gpt_error *err) {
    gpt_backend *be;
    int rc = gpt_backend_create(&be, rt, err);
    if (rc) return rc;
    snprintf(buf, len, "%s", be->ops->device_desc(be));
    gpt_backend_destroy(be);
    return GPT_OK;
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
