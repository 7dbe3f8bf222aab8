#version 450
/* part[g, c] = sum of x[r, c] over rows r in chunk g (rows per chunk). */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { uint64_t part, x; int N, C, G, rows, cblocks; } p;
void main() {
    uint gid = group_id(), g = gid / uint(p.cblocks), c = (gid % uint(p.cblocks)) * 256 + gl_LocalInvocationID.x;
    if (c >= uint(p.C) || g >= uint(p.G)) return;
    uint r0 = g * uint(p.rows), r1 = min(r0 + uint(p.rows), uint(p.N));
    float s = 0.0;
    for (uint r = r0; r < r1; r++) s += float(act_row(p.x, r, p.C).v[c]);
    f32_row(p.part, g, p.C).v[c] = s;
}
