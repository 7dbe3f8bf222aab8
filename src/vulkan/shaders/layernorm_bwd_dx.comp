#version 450
/* dx += rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * w; one
 * workgroup per row. */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { uint64_t dx, dout, x, w, mean, rstd; int N, C; } p;
void main() {
    uint row = group_id(), lid = gl_LocalInvocationID.x;
    if (row >= uint(p.N)) return;
    ACTs d = act_row(p.dout, row, p.C), x = act_row(p.x, row, p.C), w = ACTs(p.w);
    float m = F32s(p.mean).v[row], s = F32s(p.rstd).v[row];
    float gm = 0.0, gxm = 0.0;
    for (uint c = lid; c < uint(p.C); c += 256) {
        float g = float(d.v[c]) * float(w.v[c]), xhat = (float(x.v[c]) - m) * s;
        gm += g;
        gxm += g * xhat;
    }
    gm = block_sum(gm) / float(p.C);
    gxm = block_sum(gxm) / float(p.C);
    ACTs o = act_row(p.dx, row, p.C);
    for (uint c = lid; c < uint(p.C); c += 256) {
        float xhat = (float(x.v[c]) - m) * s;
        o.v[c] = ACT_T(float(o.v[c]) + s * (float(d.v[c]) * float(w.v[c]) - gm - xhat * gxm));
    }
}
