#version 450
/* dst_k[c] += (sum over g of part[k*G + g, c]) / loss scale, for the
 * vectors k = 0 (dst0) and 1 (dst1, if not 0); the chunks in order. */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { uint64_t part, dst0, dst1, scale; int C, G; } p;
void main() {
    uint c = group_id() * 256 + gl_LocalInvocationID.x;
    if (c >= uint(p.C)) return;
    float inv = 1.0 / F32s(p.scale).v[0];
    for (uint k = 0; k < 2; k++) {
        uint64_t dst = k == 0 ? p.dst0 : p.dst1;
        if (dst == 0) continue;
        float s = 0.0;
        for (uint g = 0; g < uint(p.G); g++) s += f32_row(p.part, k * uint(p.G) + g, p.C).v[c];
        F32s(dst).v[c] += s * inv;
    }
}
