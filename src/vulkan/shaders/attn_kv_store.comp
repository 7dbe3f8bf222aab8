#version 450
/* KV cache append: kcache[b, p] = k of qkv[b, t], vcache[b, p] = its v,
 * p = pos0[b] + t (0 + t without pos0); positions outside [0, S) are
 * skipped. One thread per (row, channel). */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { uint64_t qkv, kc, vc, pos0; int B, Tq, S, C; } p;
void main() {
    uint i = group_id() * 256 + gl_LocalInvocationID.x;
    if (i >= uint(p.B * p.Tq) * uint(p.C)) return;
    uint row = i / uint(p.C), c = i % uint(p.C);
    int b = int(row) / p.Tq, t = int(row) % p.Tq;
    int pos = (p.pos0 != 0 ? I32s(p.pos0).v[b] : 0) + t;
    if (pos < 0 || pos >= p.S) return;
    ACTs src = act_row(p.qkv, row, 3 * p.C);
    uint dst = uint(b * p.S + pos);
    act_row(p.kc, dst, p.C).v[c] = src.v[p.C + int(c)];
    act_row(p.vc, dst, p.C).v[c] = src.v[2 * p.C + int(c)];
}
