#version 450
/* Flash attention backward, keys: one thread per key j; queries i >= j
 * staged through shared memory with their lse and D;
 * dk_j = scale * sum_i p_ij (dO_i . v_j - D_i) q_i. */
#include "common.glsl"
layout(local_size_x = 64) in;
layout(constant_id = 0) const int HS = 64;
layout(constant_id = 1) const int BC = 32;
layout(push_constant) uniform PC { uint64_t dqkv, dout, qkv, lse, dd; int B, T, C, NH; float scale; } p;
shared float Qs[BC * HS];
shared float Ds[BC * HS];
shared float Ls[BC], DDs[BC];
void main() {
    uint lid = gl_LocalInvocationID.x;
    int j = int(gl_WorkGroupID.x) * 64 + int(lid), h = int(gl_WorkGroupID.y), b = int(gl_WorkGroupID.z);
    int C3 = 3 * p.C, hoff = h * HS;
    bool live = j < p.T;
    float k[HS], v[HS], dk[HS];
    if (live) {
        ACTs r = act_row(p.qkv, uint(b * p.T + j), C3);
        for (int d = 0; d < HS; d++) {
            k[d] = float(r.v[p.C + hoff + d]) * p.scale;
            v[d] = float(r.v[2 * p.C + hoff + d]);
        }
    }
    for (int d = 0; d < HS; d++) dk[d] = 0.0;
    int first = int(gl_WorkGroupID.x) * 64;
    for (int i0 = first; i0 < p.T; i0 += BC) {
        barrier();
        for (uint e = lid; e < uint(BC * HS); e += 64) {
            int ii = int(e) / HS, d = int(e) % HS, i = i0 + ii;
            bool ok = i < p.T;
            uint row = uint(b * p.T + min(i, p.T - 1));
            Qs[e] = ok ? float(act_row(p.qkv, row, C3).v[hoff + d]) : 0.0;
            Ds[e] = ok ? float(act_row(p.dout, row, p.C).v[hoff + d]) : 0.0;
        }
        if (lid < uint(BC)) {
            int i = min(i0 + int(lid), p.T - 1), li = (b * p.NH + h) * p.T + i;
            Ls[lid] = F32s(p.lse).v[li];
            DDs[lid] = F32s(p.dd).v[li];
        }
        barrier();
        if (!live) continue;
        for (int ii = 0; ii < BC; ii++) {
            int i = i0 + ii;
            if (i < j || i >= p.T) continue;
            float s = 0.0, dp = 0.0;
            for (int d = 0; d < HS; d++) {
                s += Qs[ii * HS + d] * k[d];
                dp += Ds[ii * HS + d] * v[d];
            }
            float ds = exp(s - Ls[ii]) * (dp - DDs[ii]);
            for (int d = 0; d < HS; d++) dk[d] += ds * Qs[ii * HS + d];
        }
    }
    if (!live) return;
    ACTs o = act_row(p.dqkv, uint(b * p.T + j), C3);
    for (int d = 0; d < HS; d++) o.v[p.C + hoff + d] = ACT_T(dk[d] * p.scale);
}
