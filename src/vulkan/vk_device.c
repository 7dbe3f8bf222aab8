/*
 * vk_device.c - finding a Vulkan device and opening it: the instance (with
 * the Khronos validation layer when GPT_VULKAN_VALIDATE=1), the choice of
 * physical device for "vulkan", "vulkan:N" and "auto", the features the
 * backend needs, the cooperative-matrix probe, and the on-disk pipeline
 * cache.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "vk_internal.h"

/* ------------------------------------------------------------ instance */

VKAPI_ATTR VkBool32 VKAPI_CALL vk_on_message(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                 VkDebugUtilsMessageTypeFlagsEXT type,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *d,
                                                 void *user) {
    (void)type;
    gpt_backend *be = user;
    if (sev < VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) return VK_FALSE;
    /* A validation message is a bug in this backend: make it the error that
     * sync() returns (the first one; a backend never prints), so that the
     * tests that run under the layer fail and show it. */
    if (be) gpt_backend_fail(be, GPT_ERR_RUNTIME, "Vulkan validation: %.200s",
                             d && d->pMessage ? d->pMessage : "(no text)");
    return VK_FALSE;
}

static int has_layer(const char *name) {
    uint32_t n = 0;
    vkEnumerateInstanceLayerProperties(&n, NULL);
    VkLayerProperties *l = calloc(n ? n : 1, sizeof *l);
    int found = 0;
    if (l && vkEnumerateInstanceLayerProperties(&n, l) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) found |= !strcmp(l[i].layerName, name);
    free(l);
    return found;
}

static int has_instance_ext(const char *name) {
    uint32_t n = 0;
    vkEnumerateInstanceExtensionProperties(NULL, &n, NULL);
    VkExtensionProperties *e = calloc(n ? n : 1, sizeof *e);
    int found = 0;
    if (e && vkEnumerateInstanceExtensionProperties(NULL, &n, e) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) found |= !strcmp(e[i].extensionName, name);
    free(e);
    return found;
}

int vk_validation_requested(void) {
    const char *v = getenv("GPT_VULKAN_VALIDATE");
    return v && *v && strcmp(v, "0") != 0;
}

VkResult vk_make_instance(VkInstance *out, int validate, int *portability) {
    VkApplicationInfo app = {VK_STRUCTURE_TYPE_APPLICATION_INFO};
    app.pApplicationName = "gpt";
    app.apiVersion = VK_API_VERSION_1_2;
    const char *exts[2], *layers[1];
    uint32_t n_ext = 0, n_layer = 0;
    VkInstanceCreateInfo ci = {VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
    /* MoltenVK is a "portability" implementation: listed only on request. */
    *portability = has_instance_ext("VK_KHR_portability_enumeration");
    if (*portability) {
        exts[n_ext++] = "VK_KHR_portability_enumeration";
        ci.flags |= 0x00000001; /* VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR */
    }
    if (validate) {
        if (!has_layer("VK_LAYER_KHRONOS_validation") ||
            !has_instance_ext(VK_EXT_DEBUG_UTILS_EXTENSION_NAME))
            return VK_ERROR_LAYER_NOT_PRESENT;
        layers[n_layer++] = "VK_LAYER_KHRONOS_validation";
        exts[n_ext++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    }
    /* With the layer, also synchronization validation: a missing barrier
     * between two ops is a hazard it reports. */
    VkValidationFeatureEnableEXT feats[] = {VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
    VkValidationFeaturesEXT vf = {VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
    vf.enabledValidationFeatureCount = 1;
    vf.pEnabledValidationFeatures = feats;
    if (validate) ci.pNext = &vf;
    ci.pApplicationInfo = &app;
    ci.enabledExtensionCount = n_ext;
    ci.ppEnabledExtensionNames = exts;
    ci.enabledLayerCount = n_layer;
    ci.ppEnabledLayerNames = layers;
    return vkCreateInstance(&ci, NULL, out);
}

/* ------------------------------------------------------ device choice */

static int dev_has_ext(VkPhysicalDevice p, const char *name) {
    uint32_t n = 0;
    vkEnumerateDeviceExtensionProperties(p, NULL, &n, NULL);
    VkExtensionProperties *e = calloc(n ? n : 1, sizeof *e);
    int found = 0;
    if (e && vkEnumerateDeviceExtensionProperties(p, NULL, &n, e) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) found |= !strcmp(e[i].extensionName, name);
    free(e);
    return found;
}

/* What the backend cannot do without: Vulkan 1.2, buffer device addresses,
 * 64-bit integers (address arithmetic), subgroup arithmetic in compute,
 * a compute queue. Returns NULL if usable, else why not. */
const char *vk_unusable(VkPhysicalDevice p) {
    VkPhysicalDeviceProperties pr;
    vkGetPhysicalDeviceProperties(p, &pr);
    if (VK_API_VERSION_MAJOR(pr.apiVersion) == 1 && VK_API_VERSION_MINOR(pr.apiVersion) < 2)
        return "it supports Vulkan 1.1 at most (1.2 needed)";
    VkPhysicalDeviceVulkan12Features f12 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceFeatures2 f = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, &f12};
    vkGetPhysicalDeviceFeatures2(p, &f);
    if (!f12.bufferDeviceAddress) return "it lacks bufferDeviceAddress";
    if (!f.features.shaderInt64) return "it lacks shaderInt64";
    VkPhysicalDeviceSubgroupProperties sg = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &sg};
    vkGetPhysicalDeviceProperties2(p, &p2);
    if (!(sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) ||
        !(sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) ||
        !(sg.supportedOperations & VK_SUBGROUP_FEATURE_BASIC_BIT))
        return "it lacks subgroup arithmetic in compute shaders";
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(p, &nq, NULL);
    VkQueueFamilyProperties q[16];
    if (nq > 16) nq = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(p, &nq, q);
    for (uint32_t i = 0; i < nq; i++)
        if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) return NULL;
    return "it has no compute queue";
}

/* Rank for "vulkan" and "auto": discrete GPUs, then Apple's GPUs (which
 * report themselves as integrated), then other integrated and virtual
 * GPUs, then CPU devices (lavapipe). 0 = unusable. */
static int rank_of(VkPhysicalDevice p) {
    if (vk_unusable(p)) return 0;
    VkPhysicalDeviceProperties pr;
    vkGetPhysicalDeviceProperties(p, &pr);
    switch (pr.deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 5;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return pr.vendorID == 0x106B ? 4 : 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 2;
    }
}

int vk_pick(VkInstance inst, int index, VkPhysicalDevice *out, char *why, size_t why_len) {
    uint32_t n = 0;
    VkResult r = vkEnumeratePhysicalDevices(inst, &n, NULL);
    if (r != VK_SUCCESS || n == 0) {
        snprintf(why, why_len, "no Vulkan device found (is a Vulkan driver installed?)");
        return -1;
    }
    VkPhysicalDevice *d = calloc(n, sizeof *d);
    if (!d || vkEnumeratePhysicalDevices(inst, &n, d) < 0) {
        free(d);
        snprintf(why, why_len, "cannot list the Vulkan devices");
        return -1;
    }
    int best = -1, best_rank = 0;
    if (index >= 0) {
        if ((uint32_t)index >= n) {
            snprintf(why, why_len, "vulkan:%d: there are %u Vulkan device(s), numbered from 0",
                     index, n);
        } else if (vk_unusable(d[index])) {
            VkPhysicalDeviceProperties pr;
            vkGetPhysicalDeviceProperties(d[index], &pr);
            snprintf(why, why_len, "vulkan:%d (%s) cannot run this backend: %s", index,
                     pr.deviceName, vk_unusable(d[index]));
        } else {
            best = index;
        }
    } else {
        for (uint32_t i = 0; i < n; i++) {
            int rk = rank_of(d[i]);
            if (rk > best_rank) best_rank = rk, best = (int)i;
        }
        if (best < 0) {
            VkPhysicalDeviceProperties pr;
            vkGetPhysicalDeviceProperties(d[0], &pr);
            snprintf(why, why_len, "no usable Vulkan device (%s: %s)", pr.deviceName,
                     vk_unusable(d[0]));
        }
    }
    if (best >= 0) *out = d[best];
    free(d);
    return best;
}

/* Probing loads the loader and every installed driver (0.1-0.3 s with
 * Mesa's): "auto" asks once per process. */
static int probed_gpu = -1, probed_any = -1;

int vk_probe_gpu(void) {
    if (probed_gpu >= 0) return probed_gpu;
    VkInstance inst;
    int port;
    if (vk_make_instance(&inst, 0, &port) != VK_SUCCESS) return probed_gpu = 0;
    uint32_t n = 0;
    int found = 0;
    if (vkEnumeratePhysicalDevices(inst, &n, NULL) == VK_SUCCESS && n) {
        VkPhysicalDevice *d = calloc(n, sizeof *d);
        if (d && vkEnumeratePhysicalDevices(inst, &n, d) >= 0)
            for (uint32_t i = 0; i < n; i++) found |= rank_of(d[i]) >= 4;
        free(d);
    }
    vkDestroyInstance(inst, NULL);
    return probed_gpu = found;
}

int vk_probe_any(void) {
    if (probed_any >= 0) return probed_any;
    VkInstance inst;
    int port;
    if (vk_make_instance(&inst, 0, &port) != VK_SUCCESS) return probed_any = 0;
    VkPhysicalDevice p;
    char why[256];
    int ok = vk_pick(inst, -1, &p, why, sizeof why) >= 0;
    vkDestroyInstance(inst, NULL);
    return probed_any = ok;
}

/* ---------------------------------------------------- cooperative matrix */

/* VK_KHR_cooperative_matrix arrived in Vulkan headers 1.3.255; Debian 12's
 * are 1.3.239. Its API is declared here from the extension's specification
 * where the headers lack it (the same names, so newer headers take over). */
#ifndef VK_KHR_cooperative_matrix
#define VK_KHR_cooperative_matrix 1
#define VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME "VK_KHR_cooperative_matrix"
#define VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR ((VkStructureType)1000506000)
#define VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR ((VkStructureType)1000506001)
#define VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_KHR ((VkStructureType)1000506002)
typedef enum { VK_COMPONENT_TYPE_FLOAT16_KHR = 0, VK_COMPONENT_TYPE_FLOAT32_KHR = 1 } VkComponentTypeKHR;
typedef enum { VK_SCOPE_SUBGROUP_KHR = 3 } VkScopeKHR;
typedef struct VkCooperativeMatrixPropertiesKHR {
    VkStructureType sType;
    void *pNext;
    uint32_t MSize, NSize, KSize;
    VkComponentTypeKHR AType, BType, CType, ResultType;
    VkBool32 saturatingAccumulation;
    VkScopeKHR scope;
} VkCooperativeMatrixPropertiesKHR;
typedef struct VkPhysicalDeviceCooperativeMatrixFeaturesKHR {
    VkStructureType sType;
    void *pNext;
    VkBool32 cooperativeMatrix;
    VkBool32 cooperativeMatrixRobustBufferAccess;
} VkPhysicalDeviceCooperativeMatrixFeaturesKHR;
typedef struct VkPhysicalDeviceCooperativeMatrixPropertiesKHR {
    VkStructureType sType;
    void *pNext;
    VkShaderStageFlags cooperativeMatrixSupportedStages;
} VkPhysicalDeviceCooperativeMatrixPropertiesKHR;
typedef VkResult(VKAPI_PTR *PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)(
    VkPhysicalDevice, uint32_t *, VkCooperativeMatrixPropertiesKHR *);
#endif

/* Cooperative matrices (tensor cores). The shader is compiled for
 * VK_NV_cooperative_matrix (Debian 12's glslc has no GL_KHR_cooperative_matrix)
 * and rewritten to VK_KHR_cooperative_matrix at build time (spv_khr.py):
 * the same tensor-core instructions, but KHR is what AMD, Intel and NVIDIA's
 * recent drivers expose. We need fp16 A and B with fp32 C and result in
 * subgroup scope, 16 x 16 x 16 or 16 x 8 x 16, 32-wide subgroups (the
 * shader's layout of 8 subgroups), the Vulkan memory model (the shader's
 * scopes) and the extension's feature bit. KHR is preferred where both are
 * usable; GPT_VULKAN_COOP=nv or =khr keeps one (to test each on a device with
 * both), GPT_VULKAN_NO_COOP=1 runs the tiled kernel. Entry points are looked
 * up so that a loader without them still works. */

/* The best usable shape, as M * N (0: none), stored in *m, *n, *k. */
static int coop_score(int ok_types, int scope_ok, uint32_t m, uint32_t n, uint32_t k, int shape[3],
                      int best) {
    if (!ok_types || !scope_ok || k != 16 || m != 16 || (n != 16 && n != 8)) return best;
    int score = (int)(m * n);
    if (score <= best) return best;
    shape[0] = (int)m, shape[1] = (int)n, shape[2] = (int)k;
    return score;
}

static int coop_nv_shape(vk_ctx *c, int shape[3]) {
    VkPhysicalDeviceCooperativeMatrixFeaturesNV feat = {
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
    VkPhysicalDeviceFeatures2 f = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, &feat};
    vkGetPhysicalDeviceFeatures2(c->phys, &f);
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV get =
        (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV)vkGetInstanceProcAddr(
            c->instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV");
    uint32_t n = 0;
    if (!feat.cooperativeMatrix || !get || get(c->phys, &n, NULL) != VK_SUCCESS || !n) return 0;
    VkCooperativeMatrixPropertiesNV *p = calloc(n, sizeof *p);
    if (!p) return 0;
    for (uint32_t i = 0; i < n; i++) p[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
    int best = 0;
    if (get(c->phys, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) {
            const VkCooperativeMatrixPropertiesNV *q = &p[i];
            int types = q->AType == VK_COMPONENT_TYPE_FLOAT16_NV && q->BType == VK_COMPONENT_TYPE_FLOAT16_NV &&
                        q->CType == VK_COMPONENT_TYPE_FLOAT32_NV && q->DType == VK_COMPONENT_TYPE_FLOAT32_NV;
            best = coop_score(types, q->scope == VK_SCOPE_SUBGROUP_NV, q->MSize, q->NSize, q->KSize, shape, best);
        }
    free(p);
    return best;
}

static int coop_khr_shape(vk_ctx *c, int shape[3]) {
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR feat = {
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR};
    VkPhysicalDeviceFeatures2 f = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, &feat};
    vkGetPhysicalDeviceFeatures2(c->phys, &f);
    VkPhysicalDeviceCooperativeMatrixPropertiesKHR stages = {
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_KHR};
    VkPhysicalDeviceProperties2 p2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &stages};
    vkGetPhysicalDeviceProperties2(c->phys, &p2);
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR get =
        (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)vkGetInstanceProcAddr(
            c->instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
    uint32_t n = 0;
    if (!feat.cooperativeMatrix || !(stages.cooperativeMatrixSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT) ||
        !get || get(c->phys, &n, NULL) != VK_SUCCESS || !n)
        return 0;
    VkCooperativeMatrixPropertiesKHR *p = calloc(n, sizeof *p);
    if (!p) return 0;
    for (uint32_t i = 0; i < n; i++) p[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR;
    int best = 0;
    if (get(c->phys, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) {
            const VkCooperativeMatrixPropertiesKHR *q = &p[i];
            int types = q->AType == VK_COMPONENT_TYPE_FLOAT16_KHR && q->BType == VK_COMPONENT_TYPE_FLOAT16_KHR &&
                        q->CType == VK_COMPONENT_TYPE_FLOAT32_KHR &&
                        q->ResultType == VK_COMPONENT_TYPE_FLOAT32_KHR && !q->saturatingAccumulation;
            best = coop_score(types, q->scope == VK_SCOPE_SUBGROUP_KHR, q->MSize, q->NSize, q->KSize, shape, best);
        }
    free(p);
    return best;
}

/* Sets c->coop_offered (the usable extensions) and c->coop (the one taken,
 * with its shape). Returns nonzero for a GPT_VULKAN_COOP that names neither. */
static int probe_coop(gpt_backend *be, int memory_model) {
    vk_ctx *c = vk_ctx_of(be);
    c->coop = VK_COOP_NONE, c->coop_offered = 0;
    const char *off = getenv("GPT_VULKAN_NO_COOP"), *only = getenv("GPT_VULKAN_COOP");
    if (only && *only && strcmp(only, "khr") && strcmp(only, "nv")) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "GPT_VULKAN_COOP=%.40s: expected khr or nv", only);
        return 1;
    }
    /* matmul_coop.comp stages 44 KiB */
    if (!c->f16 || !memory_model || c->subgroup_size != 32 ||
        c->props.limits.maxComputeSharedMemorySize < 44 * 1024)
        return 0;
    const vk_spirv *sp = &vk_spirv_table[SH_MATMUL_COOP];
    int nv[3], khr[3];
    int want_khr = !only || !*only || !strcmp(only, "khr"), want_nv = !only || !*only || !strcmp(only, "nv");
    /* Only the extension that may be taken is queried: a validation layer
     * older than the extension (Debian 12's 1.3.239 predates
     * VK_KHR_cooperative_matrix, 1.3.255) reports its structures in a pNext
     * chain as an error, which fails the backend under
     * GPT_VULKAN_VALIDATE=1; with GPT_VULKAN_COOP=nv such a layer can check
     * the NV path. */
    if (want_nv && sp->f16 && dev_has_ext(c->phys, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME) &&
        coop_nv_shape(c, nv))
        c->coop_offered |= 1 << VK_COOP_NV;
    if (want_khr && sp->khr && dev_has_ext(c->phys, VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME) &&
        coop_khr_shape(c, khr))
        c->coop_offered |= 1 << VK_COOP_KHR;
    if (off && *off && strcmp(off, "0")) return 0;
    const int *shape = NULL;
    if (want_khr && (c->coop_offered & 1 << VK_COOP_KHR)) c->coop = VK_COOP_KHR, shape = khr;
    else if (want_nv && (c->coop_offered & 1 << VK_COOP_NV)) c->coop = VK_COOP_NV, shape = nv;
    if (shape) c->coop_m = shape[0], c->coop_n = shape[1], c->coop_k = shape[2];
    return 0;
}

/* The cooperative-matrix attention forward (attn_fwd_coop.comp): wherever
 * the products run on cooperative matrices, the device has subgroup
 * shuffles and 44 KiB of shared memory, and its backward
 * (attn_bwd_dq_coop.comp, attn_bwd_dkv_coop.comp, 43.5 KiB) with it;
 * GPT_VULKAN_COOP_ATTN=0 keeps the scalar kernels (to compare them), =fwd
 * the scalar backward. Lavapipe, where CI tests, has no
 * cooperative matrices: the GPU runs test it (docs/VULKAN_NOTES.md). */
static void probe_coop_attn(vk_ctx *c, VkSubgroupFeatureFlags sg_ops) {
    const char *on = getenv("GPT_VULKAN_COOP_ATTN");
    const vk_spirv *sp = &vk_spirv_table[SH_ATTN_FWD_COOP];
    c->coop_attn = c->coop && !(on && !strcmp(on, "0")) && (sg_ops & VK_SUBGROUP_FEATURE_SHUFFLE_BIT) &&
                   c->props.limits.maxComputeSharedMemorySize >= 44 * 1024 &&
                   (c->coop == VK_COOP_KHR ? sp->khr != NULL : sp->f16 != NULL);
    /* GPT_VULKAN_COOP_ATTN=fwd: the backward stays on the scalar kernels */
    c->coop_attn_bwd = c->coop_attn && !(on && !strcmp(on, "fwd"));
}

/* ---------------------------------------------------------------- device */

static uint32_t compute_family(VkPhysicalDevice p) {
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(p, &nq, NULL);
    VkQueueFamilyProperties q[16];
    if (nq > 16) nq = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(p, &nq, q);
    /* Prefer a family with compute and graphics (the "universal" queue:
     * timestamps are always there), else any compute family. */
    for (uint32_t i = 0; i < nq; i++)
        if ((q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && (q[i].queueFlags & VK_QUEUE_GRAPHICS_BIT))
            return i;
    for (uint32_t i = 0; i < nq; i++)
        if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) return i;
    return 0;
}

int vk_open_device(gpt_backend *be, int want_f16, int want_fp32) {
    vk_ctx *c = vk_ctx_of(be);
    vkGetPhysicalDeviceProperties(c->phys, &c->props);
    vkGetPhysicalDeviceMemoryProperties(c->phys, &c->memprops);
    VkPhysicalDeviceVulkan11Features f11 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    VkPhysicalDeviceVulkan12Features f12 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, &f11};
    VkPhysicalDeviceFeatures2 f = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, &f12};
    vkGetPhysicalDeviceFeatures2(c->phys, &f);
    int can_f16 = f11.storageBuffer16BitAccess && f12.shaderFloat16;
    /* Half precision by default on GPUs that store fp16; fp32 on CPU
     * devices (lavapipe converts in software) and where asked. */
    c->f16 = !want_fp32 && can_f16 &&
             (want_f16 || c->props.deviceType != VK_PHYSICAL_DEVICE_TYPE_CPU);
    if (want_f16 && !can_f16) {
        gpt_backend_fail(be, GPT_ERR_INVALID,
                         "--precision fp16: %s lacks 16-bit storage or shaderFloat16; use "
                         "--precision fp32",
                         c->props.deviceName);
        return 1;
    }
    VkPhysicalDeviceSubgroupProperties sg = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceDriverProperties drv = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES, &sg};
    VkPhysicalDeviceProperties2 p2 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &drv};
    vkGetPhysicalDeviceProperties2(c->phys, &p2);
    c->subgroup_size = sg.subgroupSize;
    c->timestamp_ns = c->props.limits.timestampPeriod;
    c->queue_family = compute_family(c->phys);

    /* Only what we use: 64-bit integers, buffer addresses, and 16-bit
     * storage with fp16 arithmetic for the half-precision shaders. */
    VkPhysicalDeviceVulkan11Features e11 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    VkPhysicalDeviceVulkan12Features e12 = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, &e11};
    VkPhysicalDeviceFeatures2 ef = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, &e12};
    VkPhysicalDeviceCooperativeMatrixFeaturesNV ecoop_nv = {
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR ecoop_khr = {
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR};
    ef.features.shaderInt64 = VK_TRUE;
    e12.bufferDeviceAddress = VK_TRUE;
    if (c->f16) {
        e11.storageBuffer16BitAccess = VK_TRUE;
        e12.shaderFloat16 = VK_TRUE;
        if (f.features.shaderInt16) ef.features.shaderInt16 = VK_TRUE;
    }
    const char *exts[4];
    uint32_t n_ext = 0;
    if (dev_has_ext(c->phys, "VK_KHR_portability_subset")) exts[n_ext++] = "VK_KHR_portability_subset";
    c->has_budget = dev_has_ext(c->phys, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    if (c->has_budget) exts[n_ext++] = VK_EXT_MEMORY_BUDGET_EXTENSION_NAME;
    if (probe_coop(be, f12.vulkanMemoryModel)) return 1;
    probe_coop_attn(c, sg.supportedOperations);
    if (c->coop == VK_COOP_KHR) {
        exts[n_ext++] = VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME;
        ecoop_khr.cooperativeMatrix = VK_TRUE;
        e11.pNext = &ecoop_khr;
    } else if (c->coop == VK_COOP_NV) {
        exts[n_ext++] = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
        ecoop_nv.cooperativeMatrix = VK_TRUE;
        e11.pNext = &ecoop_nv;
    }
    if (c->coop) {
        e12.vulkanMemoryModel = VK_TRUE;
        e12.vulkanMemoryModelDeviceScope = f12.vulkanMemoryModelDeviceScope;
    }
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qi = {VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
    qi.queueFamilyIndex = c->queue_family;
    qi.queueCount = 1;
    qi.pQueuePriorities = &prio;
    VkDeviceCreateInfo di = {VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, &ef};
    di.queueCreateInfoCount = 1;
    di.pQueueCreateInfos = &qi;
    di.enabledExtensionCount = n_ext;
    di.ppEnabledExtensionNames = exts;
    if (vk_check(be, vkCreateDevice(c->phys, &di, NULL, &c->dev), "vkCreateDevice")) return 1;
    vkGetDeviceQueue(c->dev, c->queue_family, 0, &c->queue);
    /* "offered" lists the usable extensions, so that a test can require
     * KHR wherever the device has it (GPT_TEST_REQUIRE_COOP=1). */
    char paths[128], offered[16];
    int o = c->coop_offered;
    snprintf(offered, sizeof offered, "%s%s", o & 1 << VK_COOP_KHR ? " KHR" : "", o & 1 << VK_COOP_NV ? " NV" : "");
    if (c->coop)
        snprintf(paths, sizeof paths, "cooperative-matrix %dx%dx%d products%s (%s; offered:%s)", c->coop_m,
                 c->coop_n, c->coop_k, c->coop_attn ? " and attention" : "",
                 c->coop == VK_COOP_KHR ? VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME
                                        : VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME,
                 offered);
    else if (o) snprintf(paths, sizeof paths, "tiled products (cooperative matrices offered:%s)", offered);
    else snprintf(paths, sizeof paths, "tiled products");
    snprintf(c->desc, sizeof c->desc,
             "%.120s (Vulkan %u.%u, %.60s %.100s; %s, %.120s, subgroup %u, %u KiB shared memory)",
             c->props.deviceName, VK_API_VERSION_MAJOR(c->props.apiVersion),
             VK_API_VERSION_MINOR(c->props.apiVersion), drv.driverName, drv.driverInfo,
             c->f16 ? "fp16 storage, fp32 math" : "fp32", paths, c->subgroup_size,
             c->props.limits.maxComputeSharedMemorySize / 1024);
    return 0;
}

/* ------------------------------------------------------ pipeline cache */

/* $GPT_VULKAN_CACHE, else $XDG_CACHE_HOME/gpt or ~/.cache/gpt: one file
 * per device and driver version. The driver checks the header itself and
 * ignores data from another device or driver. A cache that cannot be read
 * or written only costs compile time. */
void vk_cache_open(gpt_backend *be) {
    vk_ctx *c = vk_ctx_of(be);
    const char *dir = getenv("GPT_VULKAN_CACHE");
    char base[400];
    if (dir && !*dir) dir = NULL; /* empty: no cache */
    if (!dir && getenv("GPT_VULKAN_CACHE")) goto create;
    if (!dir) {
        const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
        if (xdg && *xdg) snprintf(base, sizeof base, "%s/gpt", xdg);
        else if (home && *home) snprintf(base, sizeof base, "%s/.cache/gpt", home);
        else goto create;
        dir = base;
    }
    snprintf(c->cache_path, sizeof c->cache_path, "%s/vulkan-%04x-%04x-%08x.bin", dir,
             c->props.vendorID, c->props.deviceID, c->props.driverVersion);
create:;
    void *data = NULL;
    size_t len = 0;
    if (c->cache_path[0]) {
        FILE *f = fopen(c->cache_path, "rb");
        if (f) {
            if (fseek(f, 0, SEEK_END) == 0) {
                long l = ftell(f);
                if (l > 0 && l < (64L << 20) && fseek(f, 0, SEEK_SET) == 0 && (data = malloc((size_t)l))) {
                    len = fread(data, 1, (size_t)l, f);
                    if (len != (size_t)l) len = 0;
                }
            }
            fclose(f);
        }
    }
    VkPipelineCacheCreateInfo ci = {VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    ci.initialDataSize = len;
    ci.pInitialData = len ? data : NULL;
    if (vkCreatePipelineCache(c->dev, &ci, NULL, &c->cache) != VK_SUCCESS) {
        ci.initialDataSize = 0, ci.pInitialData = NULL;
        if (vkCreatePipelineCache(c->dev, &ci, NULL, &c->cache) != VK_SUCCESS) c->cache = VK_NULL_HANDLE;
    }
    free(data);
}

static void mkdirs(const char *path) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
}

void vk_cache_save(gpt_backend *be) {
    vk_ctx *c = vk_ctx_of(be);
    if (!c->cache || !c->cache_path[0]) return;
    size_t len = 0;
    if (vkGetPipelineCacheData(c->dev, c->cache, &len, NULL) != VK_SUCCESS || !len) return;
    void *data = malloc(len);
    if (!data) return;
    if (vkGetPipelineCacheData(c->dev, c->cache, &len, data) == VK_SUCCESS) {
        mkdirs(c->cache_path);
        /* write beside it and rename, so that a reader never sees half a file */
        char tmp[600];
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", c->cache_path, (long)getpid());
        FILE *f = fopen(tmp, "wb");
        if (f) {
            int ok = fwrite(data, 1, len, f) == len;
            ok &= fclose(f) == 0;
            if (!ok || rename(tmp, c->cache_path) != 0) remove(tmp);
        }
    }
    free(data);
}
