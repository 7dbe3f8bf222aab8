#version 450
/* Partial column sums of dout * xhat (dw) and dout (db) over one chunk of
 * rows: part[g, c] and part[G + g, c]; colsum_finish adds the G chunks in
 * order. Grid: (column blocks of 256) x G. */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { uint64_t part, dout, x, mean, rstd; int N, C, G, rows, cblocks; } p;
void main() {
    uint gid = group_id(), g = gid / uint(p.cblocks), c = (gid % uint(p.cblocks)) * 256 + gl_LocalInvocationID.x;
    if (c >= uint(p.C) || g >= uint(p.G)) return;
    uint r0 = g * uint(p.rows), r1 = min(r0 + uint(p.rows), uint(p.N));
    float sw = 0.0, sb = 0.0;
    for (uint r = r0; r < r1; r++) {
        float d = float(act_row(p.dout, r, p.C).v[c]);
        float xhat = (float(act_row(p.x, r, p.C).v[c]) - F32s(p.mean).v[r]) * F32s(p.rstd).v[r];
        sw += d * xhat;
        sb += d;
    }
    f32_row(p.part, g, p.C).v[c] = sw;
    f32_row(p.part, uint(p.G) + g, p.C).v[c] = sb;
}
