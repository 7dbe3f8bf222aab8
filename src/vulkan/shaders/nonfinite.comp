#version 450
/* Counts NaN and Inf among n values (ACT/PARAM type, or fp32 with F32S = 1)
 * in two passes without atomics on device memory (which Metal's
 * translation of buffer addresses does not take): PASS 0 writes one count
 * per workgroup to part[], PASS 1 (one workgroup) adds the `parts` counts
 * into counter. */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(constant_id = 0) const int F32S = 0;
layout(constant_id = 1) const int PASS = 0;
layout(push_constant) uniform PC { uint64_t x, n, part, counter; int parts; } p;
shared uint sg_sum[64];
uint block_count(uint v) {
    uint s = subgroupAdd(v);
    if (subgroupElect()) sg_sum[gl_SubgroupID] = s;
    barrier();
    uint r = 0;
    for (uint i = 0; i < gl_NumSubgroups; i++) r += sg_sum[i];
    return r;
}
void main() {
    uint bad = 0, lid = gl_LocalInvocationID.x;
    if (PASS == 0) {
        uint64_t stride = uint64_t(gl_NumWorkGroups.x) * gl_NumWorkGroups.y * 256;
        for (uint64_t i = uint64_t(group_id()) * 256 + lid; i < p.n; i += stride) {
            float v = F32S != 0 ? f32_at(p.x, i).v[0] : float(act_at(p.x, i).v[0]);
            bad += isnan(v) || isinf(v) ? 1u : 0u;
        }
        bad = block_count(bad);
        if (lid == 0) U32s(p.part).v[group_id()] = bad;
    } else {
        for (uint i = lid; i < uint(p.parts); i += 256) bad += U32s(p.part).v[i];
        bad = block_count(bad);
        if (lid == 0) U32s(p.counter).v[0] = bad;
    }
}
