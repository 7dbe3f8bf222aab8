#version 450
/* dwpe[t,c] += sum over b of dout[b,t,c] / loss scale; one thread per (t, c). */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { uint64_t dwpe, dout, scale; int B, T, C; } p;
void main() {
    uint i = group_id() * 256 + gl_LocalInvocationID.x;
    if (i >= uint(p.T) * uint(p.C)) return;
    uint t = i / uint(p.C), c = i % uint(p.C);
    float acc = 0.0;
    for (int b = 0; b < p.B; b++) acc += float(act_row(p.dout, uint(b * p.T) + t, p.C).v[c]);
    F32s(p.dwpe).v[i] += acc / F32s(p.scale).v[0];
}
