/*
 * vk_backend.c - the Vulkan backend's table and everything that is not an
 * op: memory (one VkBuffer per allocation, addressed by device address;
 * see vk_internal.h for why), uploads and downloads with fp32 <-> fp16
 * conversion through host-visible staging, command recording and
 * submission, graphs as resubmitted command buffers, timestamp timers,
 * pipelines (created on first use, kept in an on-disk pipeline cache).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "vk_internal.h"

/* ------------------------------------------------------------ checking */

static const char *vk_result_name(VkResult r) {
    switch (r) {
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "out of host memory";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "out of device memory";
    case VK_ERROR_INITIALIZATION_FAILED: return "initialization failed";
    case VK_ERROR_DEVICE_LOST: return "device lost";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "feature not present";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "extension not present";
    case VK_ERROR_LAYER_NOT_PRESENT: return "layer not present";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "incompatible driver";
    case VK_TIMEOUT: return "timeout";
    default: return "error";
    }
}

int vk_check(gpt_backend *be, VkResult r, const char *what) {
    if (r == VK_SUCCESS) return 0;
    gpt_backend_fail(be, r == VK_ERROR_OUT_OF_DEVICE_MEMORY ? GPT_ERR_NOMEM : GPT_ERR_RUNTIME,
                     "Vulkan %s failed: %s (%d)", what, vk_result_name(r), (int)r);
    return 1;
}

/* ------------------------------------------------------------- memory */

static int mem_type(vk_ctx *c, uint32_t bits, VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid) {
    for (uint32_t i = 0; i < c->memprops.memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = c->memprops.memoryTypes[i].propertyFlags;
        if ((bits & (1u << i)) && (f & want) == want && !(f & avoid)) return (int)i;
    }
    return -1;
}

/* A buffer with its own memory of the wanted kind. */
static VkResult make_buffer(vk_ctx *c, VkDeviceSize size, VkBufferUsageFlags usage,
                            VkMemoryPropertyFlags want, VkMemoryPropertyFlags prefer,
                            VkBuffer *buf, VkDeviceMemory *mem) {
    VkBufferCreateInfo bi = {VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bi.size = size;
    bi.usage = usage;
    bi.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    VkResult r = vkCreateBuffer(c->dev, &bi, NULL, buf);
    if (r != VK_SUCCESS) return r;
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(c->dev, *buf, &req);
    int t = mem_type(c, req.memoryTypeBits, want | prefer, 0);
    if (t < 0) t = mem_type(c, req.memoryTypeBits, want, 0);
    if (t < 0) {
        vkDestroyBuffer(c->dev, *buf, NULL);
        return VK_ERROR_OUT_OF_DEVICE_MEMORY;
    }
    VkMemoryAllocateFlagsInfo fi = {VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO};
    fi.flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT;
    VkMemoryAllocateInfo ai = {VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    ai.allocationSize = req.size;
    ai.memoryTypeIndex = (uint32_t)t;
    if (usage & VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT) ai.pNext = &fi;
    r = vkAllocateMemory(c->dev, &ai, NULL, mem);
    if (r != VK_SUCCESS) {
        vkDestroyBuffer(c->dev, *buf, NULL);
        return r;
    }
    r = vkBindBufferMemory(c->dev, *buf, *mem, 0);
    if (r != VK_SUCCESS) {
        vkDestroyBuffer(c->dev, *buf, NULL);
        vkFreeMemory(c->dev, *mem, NULL);
    }
    return r;
}

static VkCommandBuffer cmd(gpt_backend *be);
static void barrier(VkCommandBuffer cb);

/* GPT_VULKAN_POISON=1: new allocations are filled with all-ones bytes (NaN
 * in fp32 and fp16) before anything else touches them. Fresh memory is
 * zero on lavapipe (new pages) but holds whatever an earlier allocation
 * left on a GPU driver that recycles memory within the process; poisoning
 * makes an op that reads memory nobody wrote fail on lavapipe too. */
static void poison_fill(gpt_backend *be, VkBuffer buf, VkDeviceSize size) {
    VkCommandBuffer cb = cmd(be);
    if (!cb) return;
    vkCmdFillBuffer(cb, buf, 0, size & ~(VkDeviceSize)3, 0xffffffffu);
    barrier(cb);
}

#define DEV_USAGE                                                                          \
    (VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |                \
     VK_BUFFER_USAGE_TRANSFER_DST_BIT | VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT)

static void *vk_alloc(gpt_backend *be, size_t bytes) {
    vk_ctx *c = vk_ctx_of(be);
    if (be->err.code) return NULL;
    /* 256 bytes of slack: the address handed out is rounded up to 256 */
    VkDeviceSize size = (VkDeviceSize)(bytes ? bytes : 1) + 256;
    vk_alloc_rec a;
    memset(&a, 0, sizeof a);
    VkResult r = make_buffer(c, size, DEV_USAGE, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0, &a.buf, &a.mem);
    if (r != VK_SUCCESS) {
        gpt_backend_fail(be, GPT_ERR_NOMEM,
                         "Vulkan out of memory allocating %zu bytes on %s (%s); try a smaller "
                         "batch, a shorter sequence or --recompute",
                         bytes, c->props.deviceName, vk_result_name(r));
        return NULL;
    }
    VkBufferDeviceAddressInfo ai = {VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO};
    ai.buffer = a.buf;
    a.addr = vkGetBufferDeviceAddress(c->dev, &ai);
    a.size = size;
    if (c->n_allocs == c->cap_allocs) {
        int cap = c->cap_allocs ? 2 * c->cap_allocs : 64;
        vk_alloc_rec *n = realloc(c->allocs, (size_t)cap * sizeof *n);
        if (!n) {
            vkDestroyBuffer(c->dev, a.buf, NULL);
            vkFreeMemory(c->dev, a.mem, NULL);
            gpt_backend_fail(be, GPT_ERR_NOMEM, "out of host memory");
            return NULL;
        }
        c->allocs = n, c->cap_allocs = cap;
    }
    int i = c->n_allocs;
    while (i > 0 && c->allocs[i - 1].addr > a.addr) c->allocs[i] = c->allocs[i - 1], i--;
    c->allocs[i] = a;
    c->n_allocs++;
    if (c->poison && c->capturing < 0) poison_fill(be, a.buf, size);
    return (void *)(uintptr_t)((a.addr + 255) & ~(uint64_t)255);
}

/* Index of the allocation holding address p, or -1. */
static int find_alloc(vk_ctx *c, uint64_t p) {
    int lo = 0, hi = c->n_allocs - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const vk_alloc_rec *a = &c->allocs[mid];
        if (p < a->addr) hi = mid - 1;
        else if (p >= a->addr + a->size) lo = mid + 1;
        else return mid;
    }
    return -1;
}

VkBuffer vk_find(gpt_backend *be, const void *p, size_t n, VkDeviceSize *off) {
    vk_ctx *c = vk_ctx_of(be);
    int i = find_alloc(c, vk_addr(p));
    if (i < 0 || vk_addr(p) + n > c->allocs[i].addr + c->allocs[i].size) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "vulkan: %zu bytes at %p are not device memory of this backend",
                         n, p);
        return VK_NULL_HANDLE;
    }
    *off = vk_addr(p) - c->allocs[i].addr;
    return c->allocs[i].buf;
}

static void release_alloc(vk_ctx *c, int i) {
    vkDestroyBuffer(c->dev, c->allocs[i].buf, NULL);
    vkFreeMemory(c->dev, c->allocs[i].mem, NULL);
    for (int j = i; j + 1 < c->n_allocs; j++) c->allocs[j] = c->allocs[j + 1];
    c->n_allocs--;
}

static int submit(gpt_backend *be, VkCommandBuffer extra, int wait);

/* GPT_VULKAN_SERIALIZE=1 (a diagnosis, not a mode to run in): graphs are
 * off and every op and transfer is submitted and waited for at once,
 * so no two ever overlap on the GPU, whatever the barriers say. A result
 * that is wrong with barriers alone and right with this is a missing
 * dependency; one that is wrong either way is not a synchronization bug
 * between commands. Waits made here are not counted in be->syncs. */
static void serialize(gpt_backend *be) {
    vk_ctx *c = vk_ctx_of(be);
    if (c->serialize && c->capturing < 0 && c->cur && !c->cur_is_graph && !be->err.code)
        submit(be, VK_NULL_HANDLE, 1);
}

static void vk_free(gpt_backend *be, void *p) {
    vk_ctx *c = vk_ctx_of(be);
    if (!p) return;
    int i = find_alloc(c, vk_addr(p));
    if (i < 0) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "vulkan free: %p was not allocated here", p);
        return;
    }
    /* Work still queued may use it: wait (frees happen between phases,
     * never inside a step; counted like every wait). */
    if (c->in_flight || c->n_pending || c->cur) {
        be->syncs++;
        submit(be, VK_NULL_HANDLE, 1);
    }
    release_alloc(c, i);
}

/* ------------------------------------------------------ command buffers */

static void barrier(VkCommandBuffer cb) {
    VkMemoryBarrier mb = {VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                       VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    VkPipelineStageFlags st = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    vkCmdPipelineBarrier(cb, st, st, 0, 1, &mb, 0, NULL, 0, NULL);
}

/* GPT_VULKAN_TRACE: one timestamp slot (see vk_internal.h). A timestamp
 * at the bottom of the pipe after the barrier that follows a dispatch is
 * written once that dispatch has finished, so consecutive slots of one
 * command buffer bracket one op, its barrier and launch included. */
static void trace_mark(vk_ctx *c, VkCommandBuffer cb, int shader, const int *spec, uint32_t gx,
                       uint32_t gy, uint32_t gz) {
    if (!c->trace_pool || c->trace_n >= c->trace_cap) return;
    int slot = c->trace_n++;
    struct vk_trace_rec *r = &c->trace[slot];
    r->cb = c->trace_seq;
    r->graph = c->cur_is_graph ? c->capturing : -1;
    r->shader = shader;
    for (int i = 0; i < 3; i++) r->spec[i] = spec ? spec[i] : 0;
    r->grid[0] = gx, r->grid[1] = gy, r->grid[2] = gz;
    vkCmdResetQueryPool(cb, c->trace_pool, (uint32_t)slot, 1);
    vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, c->trace_pool, (uint32_t)slot);
}

static void trace_open(gpt_backend *be) {
    vk_ctx *c = vk_ctx_of(be);
    const char *path = getenv("GPT_VULKAN_TRACE");
    if (!path || !*path || be->err.code) return;
    uint32_t nq = 0;
    VkQueueFamilyProperties q[16];
    vkGetPhysicalDeviceQueueFamilyProperties(c->phys, &nq, NULL);
    if (nq > 16) nq = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(c->phys, &nq, q);
    if (c->queue_family >= nq || !q[c->queue_family].timestampValidBits) return;
    c->trace_cap = 1 << 16;
    c->trace = calloc((size_t)c->trace_cap, sizeof *c->trace);
    c->trace_path = strdup(path);
    VkQueryPoolCreateInfo qi = {VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
    qi.queryType = VK_QUERY_TYPE_TIMESTAMP;
    qi.queryCount = (uint32_t)c->trace_cap;
    if (!c->trace || !c->trace_path || vkCreateQueryPool(c->dev, &qi, NULL, &c->trace_pool) != VK_SUCCESS)
        c->trace_pool = VK_NULL_HANDLE;
}

/* Writes the trace: one line per timed dispatch, "graph cb shader spec0
 * spec1 spec2 gx gy gz ns" (graph -1: eager), after the device is idle.
 * bench/vk_trace.py sums it by op. */
static void trace_close(vk_ctx *c) {
    if (c->trace_pool) {
        uint64_t *v = calloc((size_t)c->trace_n * 2 + 2, sizeof *v);
        FILE *f = fopen(c->trace_path, "w");
        VkQueryResultFlags fl = VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WITH_AVAILABILITY_BIT;
        if (v && f && c->trace_n &&
            vkGetQueryPoolResults(c->dev, c->trace_pool, 0, (uint32_t)c->trace_n,
                                  (size_t)c->trace_n * 16, v, 16, fl) >= 0) {
            fprintf(f, "# graph cb shader spec0 spec1 spec2 gx gy gz ns (%s)\n", c->desc);
            for (int i = 1; i < c->trace_n; i++) {
                const struct vk_trace_rec *a = &c->trace[i - 1], *b = &c->trace[i];
                if (b->shader < 0 || a->cb != b->cb || !v[2 * i - 1] || !v[2 * i + 1]) continue;
                double ns = (double)(int64_t)(v[2 * i] - v[2 * i - 2]) * c->timestamp_ns;
                fprintf(f, "%d %d %s %d %d %d %u %u %u %.0f\n", b->graph, b->cb,
                        vk_spirv_table[b->shader].name, b->spec[0], b->spec[1], b->spec[2],
                        b->grid[0], b->grid[1], b->grid[2], ns);
            }
        }
        if (f) fclose(f);
        free(v);
        vkDestroyQueryPool(c->dev, c->trace_pool, NULL);
        c->trace_pool = VK_NULL_HANDLE;
    }
    free(c->trace);
    free(c->trace_path);
    c->trace = NULL, c->trace_path = NULL;
}

/* The command buffer being recorded; starts an eager one if none. */
static VkCommandBuffer cmd(gpt_backend *be) {
    vk_ctx *c = vk_ctx_of(be);
    if (c->cur) return c->cur;
    if (c->next_eager == c->n_eager) {
        if (c->n_eager == c->cap_eager) {
            int cap = c->cap_eager ? 2 * c->cap_eager : 8;
            VkCommandBuffer *n = realloc(c->eager, (size_t)cap * sizeof *n);
            if (!n) {
                gpt_backend_fail(be, GPT_ERR_NOMEM, "out of host memory");
                return VK_NULL_HANDLE;
            }
            c->eager = n, c->cap_eager = cap;
        }
        VkCommandBufferAllocateInfo ai = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
        ai.commandPool = c->pool;
        ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
        ai.commandBufferCount = 1;
        if (vk_check(be, vkAllocateCommandBuffers(c->dev, &ai, &c->eager[c->n_eager]),
                     "vkAllocateCommandBuffers"))
            return VK_NULL_HANDLE;
        c->n_eager++;
    }
    VkCommandBuffer cb = c->eager[c->next_eager++];
    VkCommandBufferBeginInfo bi = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    if (vk_check(be, vkBeginCommandBuffer(cb, &bi), "vkBeginCommandBuffer")) return VK_NULL_HANDLE;
    c->cur = cb;
    c->cur_is_graph = 0;
    c->trace_seq++;
    trace_mark(c, cb, -1, NULL, 0, 0, 0);
    return cb;
}

static int push_pending(gpt_backend *be, VkCommandBuffer cb) {
    vk_ctx *c = vk_ctx_of(be);
    if (c->n_pending == c->cap_pending) {
        int cap = c->cap_pending ? 2 * c->cap_pending : 8;
        VkCommandBuffer *n = realloc(c->pending, (size_t)cap * sizeof *n);
        if (!n) {
            gpt_backend_fail(be, GPT_ERR_NOMEM, "out of host memory");
            return 1;
        }
        c->pending = n, c->cap_pending = cap;
    }
    c->pending[c->n_pending++] = cb;
    return 0;
}

static void end_eager(gpt_backend *be) {
    vk_ctx *c = vk_ctx_of(be);
    if (!c->cur || c->cur_is_graph) return;
    VkCommandBuffer cb = c->cur;
    c->cur = VK_NULL_HANDLE;
    if (!vk_check(be, vkEndCommandBuffer(cb), "vkEndCommandBuffer")) push_pending(be, cb);
}

/* Submits the pending command buffers (then extra), in order; with wait,
 * waits for all submitted work and recycles staging and eager buffers. */
static int submit(gpt_backend *be, VkCommandBuffer extra, int wait) {
    vk_ctx *c = vk_ctx_of(be);
    end_eager(be);
    if (extra) push_pending(be, extra);
    if (c->n_pending || wait) {
        VkSubmitInfo si = {VK_STRUCTURE_TYPE_SUBMIT_INFO};
        si.commandBufferCount = (uint32_t)c->n_pending;
        si.pCommandBuffers = c->pending;
        int skip = !c->n_pending && !c->in_flight; /* nothing to wait for */
        if (!skip) {
            VkResult r = vkQueueSubmit(c->queue, 1, &si, wait ? c->fence : VK_NULL_HANDLE);
            c->n_pending = 0;
            if (vk_check(be, r, "vkQueueSubmit")) return 1;
            c->in_flight = 1;
            if (wait) {
                r = vkWaitForFences(c->dev, 1, &c->fence, VK_TRUE, UINT64_MAX);
                vkResetFences(c->dev, 1, &c->fence);
                if (vk_check(be, r, "vkWaitForFences")) return 1;
            }
        }
        c->n_pending = 0;
    }
    if (wait) {
        /* everything submitted has finished: eager buffers and staging are free */
        for (int i = 0; i < c->next_eager; i++) vkResetCommandBuffer(c->eager[i], 0);
        c->next_eager = 0;
        for (int i = 0; i < c->n_stage; i++) c->stage[i].used = 0;
        c->stage_pending = 0;
        c->in_flight = 0;
    }
    return 0;
}

/* -------------------------------------------------------------- pipelines */

static VkPipeline pipeline(gpt_backend *be, int sh, const int *spec) {
    vk_ctx *c = vk_ctx_of(be);
    int s[VK_MAX_SPEC] = {0};
    if (spec) memcpy(s, spec, sizeof s);
    for (int i = 0; i < c->n_pipes; i++)
        if (c->pipes[i].shader == sh && !memcmp(c->pipes[i].spec, s, sizeof s)) return c->pipes[i].pipe;
    const vk_spirv *sp = &vk_spirv_table[sh];
    const uint32_t *code = c->f16 ? sp->f16 : sp->f32;
    size_t bytes = c->f16 ? sp->f16_bytes : sp->f32_bytes;
    if (c->coop == VK_COOP_KHR && sp->khr) /* the cooperative-matrix shaders' KHR form */
        code = sp->khr, bytes = sp->khr_bytes;
    if (!code) {
        gpt_backend_fail(be, GPT_ERR_RUNTIME, "vulkan: shader %s has no %s build", sp->name,
                         c->f16 ? "fp16" : "fp32");
        return VK_NULL_HANDLE;
    }
    if (!c->modules[sh]) {
        VkShaderModuleCreateInfo mi = {VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
        mi.codeSize = bytes;
        mi.pCode = code;
        if (vk_check(be, vkCreateShaderModule(c->dev, &mi, NULL, &c->modules[sh]), "vkCreateShaderModule"))
            return VK_NULL_HANDLE;
    }
    VkSpecializationMapEntry me[VK_MAX_SPEC];
    for (int i = 0; i < VK_MAX_SPEC; i++) {
        me[i].constantID = (uint32_t)i;
        me[i].offset = (uint32_t)(i * sizeof(int));
        me[i].size = sizeof(int);
    }
    VkSpecializationInfo si = {VK_MAX_SPEC, me, sizeof s, s};
    VkComputePipelineCreateInfo ci = {VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
    ci.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
    ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    ci.stage.module = c->modules[sh];
    ci.stage.pName = "main";
    ci.stage.pSpecializationInfo = &si;
    ci.layout = c->layout;
    VkPipeline p;
    if (vk_check(be, vkCreateComputePipelines(c->dev, c->cache, 1, &ci, NULL, &p), sp->name))
        return VK_NULL_HANDLE;
    if (c->n_pipes == c->cap_pipes) {
        int cap = c->cap_pipes ? 2 * c->cap_pipes : 64;
        vk_pipe_rec *n = realloc(c->pipes, (size_t)cap * sizeof *n);
        if (!n) {
            vkDestroyPipeline(c->dev, p, NULL);
            gpt_backend_fail(be, GPT_ERR_NOMEM, "out of host memory");
            return VK_NULL_HANDLE;
        }
        c->pipes = n, c->cap_pipes = cap;
    }
    c->pipes[c->n_pipes].shader = sh;
    memcpy(c->pipes[c->n_pipes].spec, s, sizeof s);
    c->pipes[c->n_pipes].pipe = p;
    c->n_pipes++;
    return p;
}

void vk_dispatch(gpt_backend *be, int sh, const int *spec, const void *pc, size_t pc_bytes,
                 uint32_t gx, uint32_t gy, uint32_t gz) {
    vk_ctx *c = vk_ctx_of(be);
    if (be->err.code || !gx || !gy || !gz) return;
    GPT_ASSERT(pc_bytes <= VK_PC_BYTES);
    uint32_t maxx = c->props.limits.maxComputeWorkGroupCount[0];
    if (gx > maxx) {
        if (gy != 1 || gz != 1) {
            gpt_backend_fail(be, GPT_ERR_INVALID, "vulkan: %u x %u workgroups is too many", gx, gy);
            return;
        }
        gy = (gx + maxx - 1) / maxx;
        gx = maxx;
    }
    if (gy > c->props.limits.maxComputeWorkGroupCount[1] || gz > c->props.limits.maxComputeWorkGroupCount[2]) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "vulkan: a grid of %u x %u x %u workgroups is too large", gx, gy, gz);
        return;
    }
    VkPipeline p = pipeline(be, sh, spec);
    VkCommandBuffer cb = p ? cmd(be) : VK_NULL_HANDLE;
    if (!cb) return;
    vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, p);
    uint8_t buf[VK_PC_BYTES] = {0};
    memcpy(buf, pc, pc_bytes);
    vkCmdPushConstants(cb, c->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, VK_PC_BYTES, buf);
    vkCmdDispatch(cb, gx, gy, gz);
    barrier(cb);
    trace_mark(c, cb, sh, spec, gx, gy, gz);
    serialize(be);
}

/* ------------------------------------------------------------- staging */

/* Host-visible room for `bytes` of upload data until the next wait. */
static vk_host_buf *stage_room(gpt_backend *be, size_t bytes) {
    vk_ctx *c = vk_ctx_of(be);
    /* Uploads of a whole model would pile up host-visible memory until the
     * first wait: past 256 MiB, wait here (not inside a step: a step's
     * uploads are a few ids and eight floats). */
    if (c->stage_pending + bytes > ((size_t)256 << 20) && c->stage_pending && c->capturing < 0) {
        be->syncs++;
        submit(be, VK_NULL_HANDLE, 1);
    }
    for (int i = 0; i < c->n_stage; i++)
        if (c->stage[i].size - c->stage[i].used >= bytes) return &c->stage[i];
    vk_host_buf *n = realloc(c->stage, (size_t)(c->n_stage + 1) * sizeof *n);
    if (!n) {
        gpt_backend_fail(be, GPT_ERR_NOMEM, "out of host memory");
        return NULL;
    }
    c->stage = n;
    vk_host_buf *s = &c->stage[c->n_stage];
    memset(s, 0, sizeof *s);
    s->size = bytes > ((size_t)16 << 20) ? bytes : ((size_t)16 << 20);
    if (vk_check(be, make_buffer(c, s->size, VK_BUFFER_USAGE_TRANSFER_SRC_BIT,
                                 VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                                 0, &s->buf, &s->mem),
                 "staging allocation") ||
        vk_check(be, vkMapMemory(c->dev, s->mem, 0, VK_WHOLE_SIZE, 0, &s->map), "vkMapMemory"))
        return NULL;
    c->n_stage++;
    return s;
}

static void free_host_buf(vk_ctx *c, vk_host_buf *h) {
    if (h->buf) vkDestroyBuffer(c->dev, h->buf, NULL);
    if (h->mem) vkFreeMemory(c->dev, h->mem, NULL);
    memset(h, 0, sizeof *h);
}

/* fp32 <-> fp16 (IEEE half), round to nearest even, as the GPU rounds. */
static uint16_t f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, mag = x & 0x7fffffffu;
    if (mag >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (mag > 0x7f800000u ? 0x200u : 0));
    if (mag >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (mag < 0x38800000u) { /* subnormal half (or zero) */
        if (mag < 0x33000000u) return (uint16_t)sign;
        uint32_t m = (mag & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(mag >> 23); /* 14..24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((mag - 0x38000000u) >> 13), rem = mag & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ffu, x;
    if (e == 0) {
        if (!m) x = sign;
        else { /* subnormal: m * 2^-24 */
            float f = (float)m * 5.9604644775390625e-8f;
            memcpy(&x, &f, 4);
            x |= sign;
        }
    } else if (e == 31) x = sign | 0x7f800000u | (m << 13);
    else x = sign | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static int half_cls(gpt_backend *be, int cls) {
    return vk_ctx_of(be)->f16 && (cls == GPT_CLS_PARAM || cls == GPT_CLS_ACT);
}

static void vk_upload(gpt_backend *be, void *dst, const void *src, size_t n, int cls) {
    vk_ctx *c = vk_ctx_of(be);
    if (be->err.code || !n) return;
    if (cls < 0 || cls >= GPT_CLS_COUNT) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "vulkan upload: bad class %d", cls);
        return;
    }
    if (c->capturing >= 0) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "vulkan: upload while recording graph %d", c->capturing);
        return;
    }
    size_t bytes = n * be->cls_size[cls];
    VkDeviceSize off;
    VkBuffer b = vk_find(be, dst, bytes, &off);
    vk_host_buf *s = b ? stage_room(be, (bytes + 15) & ~(size_t)15) : NULL;
    if (!s) return;
    char *p = (char *)s->map + s->used;
    if (half_cls(be, cls)) {
        const float *f = src;
        uint16_t *h = (uint16_t *)p;
        for (size_t i = 0; i < n; i++) h[i] = f32_to_f16(f[i]);
    } else {
        memcpy(p, src, bytes);
    }
    VkBufferCopy region = {s->used, off, bytes};
    s->used += (bytes + 15) & ~(size_t)15;
    c->stage_pending += bytes;
    VkCommandBuffer cb = cmd(be);
    if (!cb) return;
    vkCmdCopyBuffer(cb, s->buf, b, 1, &region);
    barrier(cb);
    serialize(be);
}

/* Copies bytes at device address src into host dst after all issued work
 * (one wait, not counted here). */
static int read_back(gpt_backend *be, void *dst, const void *src, size_t bytes) {
    vk_ctx *c = vk_ctx_of(be);
    /* Inside a capture cmd() is the graph: the copy would wait for a
     * replay while the host read the readback buffer's old contents now. */
    if (c->capturing >= 0) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "vulkan: a host read while recording graph %d", c->capturing);
        return 1;
    }
    VkDeviceSize off;
    VkBuffer b = vk_find(be, src, bytes, &off);
    if (!b) return 1;
    if (c->readback.size < bytes) {
        if (c->in_flight || c->n_pending || c->cur) submit(be, VK_NULL_HANDLE, 1);
        free_host_buf(c, &c->readback);
        size_t size = bytes > ((size_t)1 << 20) ? bytes : ((size_t)1 << 20);
        if (vk_check(be, make_buffer(c, size, VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                                     VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                                     VK_MEMORY_PROPERTY_HOST_CACHED_BIT, &c->readback.buf, &c->readback.mem),
                     "readback allocation") ||
            vk_check(be, vkMapMemory(c->dev, c->readback.mem, 0, VK_WHOLE_SIZE, 0, &c->readback.map),
                     "vkMapMemory"))
            return 1;
        c->readback.size = size;
    }
    VkCommandBuffer cb = cmd(be);
    if (!cb) return 1;
    VkBufferCopy region = {off, 0, bytes};
    vkCmdCopyBuffer(cb, b, c->readback.buf, 1, &region);
    VkMemoryBarrier mb = {VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0,
                         NULL, 0, NULL);
    if (submit(be, VK_NULL_HANDLE, 1)) return 1;
    memcpy(dst, c->readback.map, bytes);
    return 0;
}

static void vk_download(gpt_backend *be, void *dst, const void *src, size_t n, int cls) {
    vk_ctx *c = vk_ctx_of(be);
    if (!n) return;
    if (be->err.code || cls < 0 || cls >= GPT_CLS_COUNT || c->capturing >= 0) {
        if (!be->err.code)
            gpt_backend_fail(be, GPT_ERR_INVALID, "vulkan download: bad class %d or inside a graph", cls);
        memset(dst, 0, n * 4);
        return;
    }
    be->syncs++;
    if (half_cls(be, cls)) {
        /* the halves land in the second half of dst, then widen forwards */
        uint16_t *h = (uint16_t *)((float *)dst + n) - n;
        if (read_back(be, h, src, n * 2)) {
            memset(dst, 0, n * 4);
            return;
        }
        float *f = dst;
        for (size_t i = 0; i < n; i++) f[i] = f16_to_f32(h[i]);
    } else if (read_back(be, dst, src, n * 4)) {
        memset(dst, 0, n * 4);
    }
}

static int vk_sync(gpt_backend *be) {
    vk_ctx *c = vk_ctx_of(be);
    be->syncs++;
    if (c->capturing >= 0) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "vulkan: sync while recording graph %d", c->capturing);
        return be->err.code;
    }
    submit(be, VK_NULL_HANDLE, 1);
    return be->err.code;
}

static void vk_memset0(gpt_backend *be, void *p, size_t bytes) {
    if (be->err.code || !bytes) return;
    VkDeviceSize off;
    VkBuffer b = vk_find(be, p, bytes, &off);
    if (!b) return;
    if (off % 4 || bytes % 4) { /* vkCmdFillBuffer takes whole words only */
        vk_fill_zero(be, p, bytes);
        return;
    }
    VkCommandBuffer cb = cmd(be);
    if (!cb) return;
    vkCmdFillBuffer(cb, b, off, bytes, 0);
    barrier(cb);
    serialize(be);
}

static void vk_copy(gpt_backend *be, void *dst, const void *src, size_t bytes) {
    if (be->err.code || !bytes) return;
    VkDeviceSize so, dof;
    VkBuffer sb = vk_find(be, src, bytes, &so), db = vk_find(be, dst, bytes, &dof);
    if (!sb || !db) return;
    VkCommandBuffer cb = cmd(be);
    if (!cb) return;
    VkBufferCopy region = {so, dof, bytes};
    vkCmdCopyBuffer(cb, sb, db, 1, &region);
    barrier(cb);
    serialize(be);
}

static long vk_nonfinite_count(gpt_backend *be, const void *p, size_t n, int cls) {
    vk_ctx *c = vk_ctx_of(be);
    be->syncs++;
    if (be->err.code || cls == GPT_CLS_I32 || !n) return 0;
    uint32_t count = 0;
    vk_count_nonfinite(be, p, n, cls);
    if (read_back(be, &count, (char *)c->state + VK_STATE_COUNT, 4)) return 0;
    return (long)count;
}

/* -------------------------------------------------------------- timers */

static void vk_timer_record(gpt_backend *be, int slot) {
    vk_ctx *c = vk_ctx_of(be);
    if (be->err.code) return;
    if (slot < 0 || slot >= c->n_timers) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "vulkan timer slot %d outside [0, %d)", slot, c->n_timers);
        return;
    }
    if (!c->timers) return; /* the queue has no timestamps */
    VkCommandBuffer cb = cmd(be);
    if (!cb) return;
    vkCmdResetQueryPool(cb, c->timers, (uint32_t)slot, 1);
    vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, c->timers, (uint32_t)slot);
}

static double vk_timer_elapsed_ms(gpt_backend *be, int from, int to) {
    vk_ctx *c = vk_ctx_of(be);
    if (be->err.code) return 0;
    if (from < 0 || to < 0 || from >= c->n_timers || to >= c->n_timers) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "vulkan timer slots %d, %d outside [0, %d)", from, to,
                         c->n_timers);
        return 0;
    }
    be->syncs++;
    if (c->in_flight || c->n_pending || c->cur) submit(be, VK_NULL_HANDLE, 1);
    if (!c->timers) return 0;
    uint64_t a = 0, b = 0;
    VkQueryResultFlags fl = VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT;
    if (vk_check(be, vkGetQueryPoolResults(c->dev, c->timers, (uint32_t)from, 1, 8, &a, 8, fl), "timestamps") ||
        vk_check(be, vkGetQueryPoolResults(c->dev, c->timers, (uint32_t)to, 1, 8, &b, 8, fl), "timestamps"))
        return 0;
    return (double)(int64_t)(b - a) * c->timestamp_ns * 1e-6;
}

/* -------------------------------------------------------------- graphs */

static void drop_graphs(vk_ctx *c) {
    for (int i = 0; i < c->n_graphs; i++) vkFreeCommandBuffers(c->dev, c->pool, 1, &c->graphs[i].cb);
    c->n_graphs = 0;
}

static int vk_graph_begin(gpt_backend *be, int id) {
    vk_ctx *c = vk_ctx_of(be);
    if (be->err.code) return 0;
    /* GPT_VULKAN_SERIALIZE: no graphs, so that every op runs eagerly and
     * is waited for (graph_end then finds no capture and does nothing) */
    if (c->serialize) return 0;
    if (c->capturing >= 0) {
        gpt_backend_fail(be, GPT_ERR_RUNTIME, "graph %d begun while graph %d is recording", id, c->capturing);
        return 0;
    }
    for (int i = 0; i < c->n_graphs; i++)
        if (c->graphs[i].id == id) {
            c->graphs[i].used = ++c->graph_clock;
            return !submit(be, c->graphs[i].cb, 0);
        }
    if (c->n_graphs == VK_MAX_GRAPHS) {
        /* ids change when buffers move: the least recently launched graph
         * is the one most likely to hold stale addresses. It may still be
         * queued: wait before freeing it. */
        int lru = 0;
        for (int i = 1; i < c->n_graphs; i++)
            if (c->graphs[i].used < c->graphs[lru].used) lru = i;
        if (c->in_flight || c->n_pending || c->cur) submit(be, VK_NULL_HANDLE, 1);
        vkFreeCommandBuffers(c->dev, c->pool, 1, &c->graphs[lru].cb);
        c->graphs[lru] = c->graphs[--c->n_graphs];
    }
    /* eager work issued before the graph goes first */
    end_eager(be);
    VkCommandBufferAllocateInfo ai = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = c->pool;
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = 1;
    VkCommandBuffer cb;
    if (vk_check(be, vkAllocateCommandBuffers(c->dev, &ai, &cb), "vkAllocateCommandBuffers")) return 0;
    VkCommandBufferBeginInfo bi = {VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    bi.flags = VK_COMMAND_BUFFER_USAGE_SIMULTANEOUS_USE_BIT; /* replays may queue up */
    if (vk_check(be, vkBeginCommandBuffer(cb, &bi), "vkBeginCommandBuffer")) {
        vkFreeCommandBuffers(c->dev, c->pool, 1, &cb);
        return 0;
    }
    c->cur = cb;
    c->cur_is_graph = 1;
    c->capturing = id;
    c->trace_seq++;
    trace_mark(c, cb, -1, NULL, 0, 0, 0);
    return 0;
}

static void vk_graph_end(gpt_backend *be, int id) {
    vk_ctx *c = vk_ctx_of(be);
    if (c->capturing < 0 || c->capturing != id) return;
    VkCommandBuffer cb = c->cur;
    c->cur = VK_NULL_HANDLE;
    c->cur_is_graph = 0;
    c->capturing = -1;
    if (vk_check(be, vkEndCommandBuffer(cb), "vkEndCommandBuffer") || be->err.code) {
        vkFreeCommandBuffers(c->dev, c->pool, 1, &cb);
        return;
    }
    c->graphs[c->n_graphs].id = id;
    c->graphs[c->n_graphs].used = ++c->graph_clock;
    c->graphs[c->n_graphs].cb = cb;
    c->n_graphs++;
    submit(be, cb, 0);
}

/* ------------------------------------------------------------ lifetime */

static void free_workspaces(gpt_backend *be) {
    vk_ctx *c = vk_ctx_of(be);
    if (c->scratch) vk_free(be, c->scratch);
    if (c->attn_d) vk_free(be, c->attn_d);
    if (c->kv_part) vk_free(be, c->kv_part);
    if (c->splitk) vk_free(be, c->splitk);
    c->scratch = c->attn_d = c->kv_part = c->splitk = NULL;
    c->scratch_bytes = c->attn_d_bytes = c->kv_part_bytes = c->splitk_bytes = 0;
    if (c->timers) vkDestroyQueryPool(c->dev, c->timers, NULL);
    c->timers = VK_NULL_HANDLE;
    c->n_timers = 0;
}

static void vk_destroy(gpt_backend *be) {
    if (!be) return;
    vk_ctx *c = vk_ctx_of(be);
    if (c) {
        if (c->dev) {
            vkDeviceWaitIdle(c->dev);
            trace_close(c);
            drop_graphs(c);
            free_workspaces(be);
            vk_cache_save(be);
            for (int i = 0; i < c->n_pipes; i++) vkDestroyPipeline(c->dev, c->pipes[i].pipe, NULL);
            for (int i = 0; i < SH_COUNT; i++)
                if (c->modules[i]) vkDestroyShaderModule(c->dev, c->modules[i], NULL);
            while (c->n_allocs) release_alloc(c, c->n_allocs - 1);
            for (int i = 0; i < c->n_stage; i++) free_host_buf(c, &c->stage[i]);
            free_host_buf(c, &c->readback);
            if (c->cache) vkDestroyPipelineCache(c->dev, c->cache, NULL);
            if (c->layout) vkDestroyPipelineLayout(c->dev, c->layout, NULL);
            if (c->fence) vkDestroyFence(c->dev, c->fence, NULL);
            if (c->pool) vkDestroyCommandPool(c->dev, c->pool, NULL);
            vkDestroyDevice(c->dev, NULL);
        }
        if (c->messenger) {
            PFN_vkDestroyDebugUtilsMessengerEXT d = (PFN_vkDestroyDebugUtilsMessengerEXT)
                vkGetInstanceProcAddr(c->instance, "vkDestroyDebugUtilsMessengerEXT");
            if (d) d(c->instance, c->messenger, NULL);
        }
        if (c->instance) vkDestroyInstance(c->instance, NULL);
        free(c->pipes);
        free(c->allocs);
        free(c->eager);
        free(c->pending);
        free(c->stage);
        free(c);
    }
    free(be);
}

static const char *vk_device_desc(gpt_backend *be) { return vk_ctx_of(be)->desc; }

static int vk_mem_info(gpt_backend *be, size_t *free_bytes, size_t *total_bytes) {
    vk_ctx *c = vk_ctx_of(be);
    VkPhysicalDeviceMemoryBudgetPropertiesEXT bud = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 mp = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2};
    if (c->has_budget) mp.pNext = &bud;
    vkGetPhysicalDeviceMemoryProperties2(c->phys, &mp);
    /* the largest device-local heap */
    int h = -1;
    for (uint32_t i = 0; i < mp.memoryProperties.memoryHeapCount; i++)
        if ((mp.memoryProperties.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
            (h < 0 || mp.memoryProperties.memoryHeaps[i].size > mp.memoryProperties.memoryHeaps[h].size))
            h = (int)i;
    size_t total = h >= 0 ? (size_t)mp.memoryProperties.memoryHeaps[h].size : 0, free_b = total;
    if (h >= 0 && c->has_budget) {
        VkDeviceSize b = bud.heapBudget[h], u = bud.heapUsage[h];
        free_b = b > u ? (size_t)(b - u) : 0;
    } else {
        size_t used = 0;
        for (int i = 0; i < c->n_allocs; i++) used += (size_t)c->allocs[i].size;
        free_b = total > used ? total - used : 0;
    }
    if (free_bytes) *free_bytes = free_b;
    if (total_bytes) *total_bytes = total;
    return 0;
}

/* Private workspaces for shapes up to s: reduction partials (64 row
 * chunks of the widest matrix, or AdamW's 1024 partial norms) and the
 * attention backward's row sums. */
static size_t plan_scratch(const gpt_shape *s) {
    size_t w = (size_t)s->C * 3;
    if ((size_t)s->F > w) w = (size_t)s->F;
    if ((size_t)s->Vp > w) w = (size_t)s->Vp;
    size_t n = 64 * 2 * w;
    if (n < 4096) n = 4096;
    return n * 4;
}

/* The decoding attention's partials: a query row per batch row (one
 * decoding step), (m, l, HS values) per head and chunk of 64 positions. */
static size_t plan_kv_part(const gpt_shape *s) {
    return (size_t)s->B * (size_t)((s->T + 63) / 64) * (size_t)(s->C + 2 * s->NH) * 4;
}

/* Split-K partials (vk_ops.c's gemm): up to VK_SPLITK_GROUPS 128 x 128
 * fp32 tiles, where the products run on cooperative matrices. */
static size_t plan_splitk(const vk_ctx *c, const gpt_shape *s) {
    return c->coop && s->train ? (size_t)VK_SPLITK_GROUPS * 128 * 128 * 4 : 0;
}

static size_t vk_workspace_bytes(gpt_backend *be, const gpt_shape *s) {
    return plan_scratch(s) + plan_kv_part(s) + plan_splitk(vk_ctx_of(be), s) +
           (s->train ? (size_t)s->B * s->NH * s->T * 4 : 0);
}

void *vk_scratch(gpt_backend *be, size_t bytes) {
    vk_ctx *c = vk_ctx_of(be);
    if (c->scratch_bytes >= bytes) return c->scratch;
    gpt_backend_fail(be, GPT_ERR_INVALID,
                     "vulkan: an op needs %zu bytes of scratch, reserve() sized %zu: shapes larger "
                     "than reserved", bytes, c->scratch_bytes);
    return NULL;
}

static int vk_reserve(gpt_backend *be, const gpt_shape *s) {
    vk_ctx *c = vk_ctx_of(be);
    if (be->err.code) return be->err.code;
    if (!s || s->B < 1 || s->T < 1 || s->C < 1 || s->NH < 1 || s->C % s->NH) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "vulkan reserve: invalid shape");
        return be->err.code;
    }
    be->syncs++;
    submit(be, VK_NULL_HANDLE, 1);
    drop_graphs(c);
    free_workspaces(be);
    c->scratch_bytes = plan_scratch(s);
    c->scratch = vk_alloc(be, c->scratch_bytes);
    c->kv_part_bytes = plan_kv_part(s);
    c->kv_part = vk_alloc(be, c->kv_part_bytes);
    if (s->train) {
        c->attn_d_bytes = (size_t)s->B * s->NH * s->T * 4;
        c->attn_d = vk_alloc(be, c->attn_d_bytes);
    }
    if ((c->splitk_bytes = plan_splitk(c, s))) c->splitk = vk_alloc(be, c->splitk_bytes);
    if (s->n_timers > 0 && !be->err.code) {
        VkQueryPoolCreateInfo qi = {VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
        qi.queryType = VK_QUERY_TYPE_TIMESTAMP;
        qi.queryCount = (uint32_t)s->n_timers;
        uint32_t nq = 0;
        vkGetPhysicalDeviceQueueFamilyProperties(c->phys, &nq, NULL);
        VkQueueFamilyProperties q[16];
        if (nq > 16) nq = 16;
        vkGetPhysicalDeviceQueueFamilyProperties(c->phys, &nq, q);
        if (c->queue_family < nq && q[c->queue_family].timestampValidBits)
            vk_check(be, vkCreateQueryPool(c->dev, &qi, NULL, &c->timers), "vkCreateQueryPool");
        c->n_timers = s->n_timers;
    }
    c->shape = *s;
    return be->err.code;
}

static const gpt_backend_ops vk_ops_table = {
    .destroy = vk_destroy,
    .device_desc = vk_device_desc,
    .mem_info = vk_mem_info,
    .workspace_bytes = vk_workspace_bytes,
    .reserve = vk_reserve,
    .alloc = vk_alloc,
    .free = vk_free,
    .memset0 = vk_memset0,
    .upload = vk_upload,
    .download = vk_download,
    .sync = vk_sync,
    .encoder_forward = vk_encoder_forward,
    .layernorm_forward = vk_layernorm_forward,
    .residual_layernorm_forward = vk_residual_layernorm_forward,
    .matmul_forward = vk_matmul_forward,
    .gelu_forward = vk_gelu_forward,
    .add = vk_add,
    .attention_forward = vk_attention_forward,
    .attention_kv_forward = vk_attention_kv_forward,
    .crossentropy = vk_crossentropy,
    .sum_f32 = vk_sum_f32,
    .encoder_backward = vk_encoder_backward,
    .layernorm_backward = vk_layernorm_backward,
    .matmul_backward = vk_matmul_backward,
    .attention_backward = vk_attention_backward,
    .sumsq = vk_sumsq,
    .adamw = vk_adamw,
    .nonfinite_count = vk_nonfinite_count,
    .timer_record = vk_timer_record,
    .timer_elapsed_ms = vk_timer_elapsed_ms,
    .graph_begin = vk_graph_begin,
    .graph_end = vk_graph_end,
    .argmax = vk_argmax,
    .copy = vk_copy,
    .matmul_ln_forward = vk_matmul_ln_forward,
    .matmul_residual_forward = vk_matmul_residual_forward,
    .attention_kv_residual_forward = vk_attention_kv_residual_forward,
};

int gpt_vulkan_backend_probe(void) { return vk_probe_any(); }
int gpt_vulkan_backend_probe_gpu(void) { return vk_probe_gpu(); }

/* "vulkan" -> -1 (the best device), "vulkan:N" -> N; -2 if malformed. */
static int device_index(const char *dev) {
    if (!dev || !strcmp(dev, "vulkan") || !strcmp(dev, "auto")) return -1;
    if (strncmp(dev, "vulkan:", 7) || !dev[7]) return -2;
    char *end;
    long v = strtol(dev + 7, &end, 10);
    return *end || v < 0 || v > 64 ? -2 : (int)v;
}

static int setup(gpt_backend *be, const gpt_runtime *rt) {
    vk_ctx *c = vk_ctx_of(be);
    int validate = vk_validation_requested(), port;
    VkResult r = vk_make_instance(&c->instance, validate, &port);
    if (r == VK_ERROR_LAYER_NOT_PRESENT && validate) {
        gpt_backend_fail(be, GPT_ERR_INVALID,
                         "GPT_VULKAN_VALIDATE=1: VK_LAYER_KHRONOS_validation is not installed "
                         "(Debian: vulkan-validationlayers)");
        return 1;
    }
    if (r != VK_SUCCESS) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "--device vulkan: no Vulkan loader or driver (%s)",
                         vk_result_name(r));
        return 1;
    }
    if (validate) {
        PFN_vkCreateDebugUtilsMessengerEXT mk = (PFN_vkCreateDebugUtilsMessengerEXT)
            vkGetInstanceProcAddr(c->instance, "vkCreateDebugUtilsMessengerEXT");
        VkDebugUtilsMessengerCreateInfoEXT mi = {VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
        mi.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                             VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
        mi.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                         VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                         VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
        mi.pfnUserCallback = vk_on_message;
        mi.pUserData = be;
        if (!mk || vk_check(be, mk(c->instance, &mi, NULL, &c->messenger), "debug messenger")) return 1;
    }
    char why[256];
    int idx = device_index(rt ? rt->device : NULL);
    if (idx == -2) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "device '%s': use vulkan or vulkan:N (N from 0)", rt->device);
        return 1;
    }
    if (vk_pick(c->instance, idx, &c->phys, why, sizeof why) < 0) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "--device vulkan: %s", why);
        return 1;
    }
    int prec = rt ? rt->precision : GPT_PREC_AUTO;
    if (prec == GPT_PREC_BF16) {
        gpt_backend_fail(be, GPT_ERR_INVALID,
                         "--precision bf16: the Vulkan backend computes in fp32 or fp16 (use "
                         "--precision fp16 or fp32)");
        return 1;
    }
    if (vk_open_device(be, prec == GPT_PREC_FP16, prec == GPT_PREC_FP32)) return 1;
    be->precision = c->f16 ? GPT_PREC_FP16 : GPT_PREC_FP32;
    size_t pa = c->f16 ? 2 : 4;
    be->cls_size[GPT_CLS_PARAM] = be->cls_size[GPT_CLS_ACT] = pa;
    be->cls_size[GPT_CLS_GRAD] = be->cls_size[GPT_CLS_F32] = be->cls_size[GPT_CLS_I32] = 4;
    be->cls_size[GPT_CLS_Q8] = 1; /* no int8 products here: the model does not quantize for us */

    VkPushConstantRange pr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, VK_PC_BYTES};
    VkPipelineLayoutCreateInfo li = {VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
    li.pushConstantRangeCount = 1;
    li.pPushConstantRanges = &pr;
    if (vk_check(be, vkCreatePipelineLayout(c->dev, &li, NULL, &c->layout), "vkCreatePipelineLayout"))
        return 1;
    VkCommandPoolCreateInfo pi = {VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    pi.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    pi.queueFamilyIndex = c->queue_family;
    VkFenceCreateInfo fi = {VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if (vk_check(be, vkCreateCommandPool(c->dev, &pi, NULL, &c->pool), "vkCreateCommandPool") ||
        vk_check(be, vkCreateFence(c->dev, &fi, NULL, &c->fence), "vkCreateFence"))
        return 1;
    vk_cache_open(be);
    /* Loss scale (fp16 training; see vk_ops.c), its good-step count, the
     * non-finite counter and a constant 1.0. */
    c->state = vk_alloc(be, VK_STATE_BYTES);
    if (!c->state) return 1;
    const char *ls = getenv("GPT_VULKAN_LOSS_SCALE");
    float init[4] = {c->f16 ? 65536.0f : 1.0f, 0, 0, 1.0f};
    if (ls && *ls) init[0] = (float)atof(ls);
    if (!(init[0] > 0) || !isfinite(init[0])) init[0] = 1.0f;
    vk_upload(be, c->state, init, 4, GPT_CLS_F32);
    return be->err.code;
}

int gpt_vulkan_backend_create(gpt_backend **out, const gpt_runtime *rt, gpt_error *err) {
    *out = NULL;
    gpt_backend *be = calloc(1, sizeof *be);
    vk_ctx *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be), free(c);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    }
    be->ops = &vk_ops_table;
    be->ctx = c;
    be->name = "vulkan";
    c->capturing = -1;
    const char *poison = getenv("GPT_VULKAN_POISON");
    c->poison = poison && !strcmp(poison, "1");
    const char *ser = getenv("GPT_VULKAN_SERIALIZE");
    c->serialize = ser && !strcmp(ser, "1");
    int bad = setup(be, rt);
    if (!bad) trace_open(be);
    if (bad || be->err.code) {
        int code = be->err.code ? be->err.code : GPT_ERR_RUNTIME;
        if (err) *err = be->err;
        if (err && !err->code) err->code = code;
        vk_destroy(be);
        return code;
    }
    *out = be;
    return GPT_OK;
}
