#version 450
/* out[i] += (sum over s < S of part[s * n + i]) / scale, in order of s:
 * the weight gradient of a product whose K was split over S workgroup
 * grids (matmul_coop.comp's EPI = 3), added as EPI = 2 adds one. */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { uint64_t out_, part, scale; uint n; int S; } p;
void main() {
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
    if (i >= p.n) return;
    float y = 0.0;
    for (int s = 0; s < p.S; s++) y += f32_at(p.part, uint64_t(s) * p.n + i).v[0];
    f32_at(p.out_, i).v[0] += y / F32s(p.scale).v[0];
}
