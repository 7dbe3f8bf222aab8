#version 450
/* out[b,t,:] = wte[tok[b,t],:] + wpe[p,:], p = pos0[b] + t; ids or
 * positions out of range give a zero row. One workgroup per (row, 256
 * channels). */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { uint64_t out_, tok, pos0, wte, wpe; int T, C, Vp, maxT, cblocks, N; } p;
void main() {
    uint g = group_id(), row = g / p.cblocks, c = (g % p.cblocks) * 256 + gl_LocalInvocationID.x;
    if (row >= p.N || c >= p.C) return;
    int id = I32s(p.tok).v[row];
    int b = int(row) / p.T, t = int(row) % p.T;
    int pos = (p.pos0 != 0 ? I32s(p.pos0).v[b] : 0) + t;
    float x = 0.0;
    if (id >= 0 && id < p.Vp && pos >= 0 && pos < p.maxT)
        x = float(act_row(p.wte, id, p.C).v[c]) + float(act_row(p.wpe, pos, p.C).v[c]);
    act_row(p.out_, row, p.C).v[c] = ACT_T(x);
}
