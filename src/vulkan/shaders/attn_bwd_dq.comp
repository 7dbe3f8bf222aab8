#version 450
/* Flash attention backward, queries: one thread per query recomputes its
 * probabilities from lse, D = rowsum(dO * O) (written for the key
 * kernels), and dq = scale * sum_j p_j (dO . v_j - D) k_j. */
#include "common.glsl"
layout(local_size_x = 64) in;
layout(constant_id = 0) const int HS = 64;
layout(constant_id = 1) const int BC = 32;
layout(push_constant) uniform PC { uint64_t dqkv, dout, qkv, out_, lse, dd; int B, T, C, NH; float scale; } p;
shared float Ks[BC * HS];
shared float Vs[BC * HS];
void main() {
    uint lid = gl_LocalInvocationID.x;
    int t = int(gl_WorkGroupID.x) * 64 + int(lid), h = int(gl_WorkGroupID.y), b = int(gl_WorkGroupID.z);
    int C3 = 3 * p.C, hoff = h * HS;
    bool live = t < p.T;
    float q[HS], dO[HS], dq[HS];
    float D = 0.0, lse = 0.0;
    if (live) {
        ACTs qr = act_row(p.qkv, uint(b * p.T + t), C3);
        ACTs dr = act_row(p.dout, uint(b * p.T + t), p.C), orow = act_row(p.out_, uint(b * p.T + t), p.C);
        for (int d = 0; d < HS; d++) {
            q[d] = float(qr.v[hoff + d]) * p.scale;
            dO[d] = float(dr.v[hoff + d]);
            D += dO[d] * float(orow.v[hoff + d]);
        }
        int li = (b * p.NH + h) * p.T + t;
        lse = F32s(p.lse).v[li];
        F32s(p.dd).v[li] = D;
    }
    for (int d = 0; d < HS; d++) dq[d] = 0.0;
    int last = min(int(gl_WorkGroupID.x) * 64 + 63, p.T - 1);
    for (int j0 = 0; j0 <= last; j0 += BC) {
        barrier();
        for (uint e = lid; e < uint(BC * HS); e += 64) {
            int jj = int(e) / HS, d = int(e) % HS, j = j0 + jj;
            bool ok = j < p.T;
            ACTs r = act_row(p.qkv, uint(b * p.T + min(j, p.T - 1)), C3);
            Ks[e] = ok ? float(r.v[p.C + hoff + d]) : 0.0;
            Vs[e] = ok ? float(r.v[2 * p.C + hoff + d]) : 0.0;
        }
        barrier();
        if (!live || j0 > t) continue;
        for (int jj = 0; jj < BC; jj++) {
            if (j0 + jj > t) break;
            float s = 0.0, dp = 0.0;
            for (int d = 0; d < HS; d++) {
                s += q[d] * Ks[jj * HS + d];
                dp += dO[d] * Vs[jj * HS + d];
            }
            float ds = exp(s - lse) * (dp - D);
            for (int d = 0; d < HS; d++) dq[d] += ds * Ks[jj * HS + d];
        }
    }
    if (!live) return;
    ACTs o = act_row(p.dqkv, uint(b * p.T + t), C3);
    for (int d = 0; d < HS; d++) o.v[hoff + d] = ACT_T(dq[d] * p.scale);
}
