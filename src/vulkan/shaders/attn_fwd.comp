#version 450
/* Causal flash attention forward: one thread per query (64 a workgroup,
 * one (batch row, head) per workgroup row of the grid), keys and values
 * staged through shared memory BC at a time; each thread keeps its scaled
 * query, its output row and the running max and sum (online softmax, Dao
 * et al. 2022), so no (T, T) score matrix exists. HS (head size) and BC
 * are specialization constants. lse (B, NH, T) = max + log(sum), unless 0. */
#include "common.glsl"
layout(local_size_x = 64) in;
layout(constant_id = 0) const int HS = 64;
layout(constant_id = 1) const int BC = 32;
layout(push_constant) uniform PC { uint64_t out_, lse, qkv; int B, T, C, NH; float scale; } p;
shared float Ks[BC * HS];
shared float Vs[BC * HS];
void main() {
    uint lid = gl_LocalInvocationID.x;
    int t = int(gl_WorkGroupID.x) * 64 + int(lid), h = int(gl_WorkGroupID.y), b = int(gl_WorkGroupID.z);
    int C3 = 3 * p.C, hoff = h * HS;
    bool live = t < p.T;
    float q[HS], o[HS];
    float m = -1.0 / 0.0, l = 0.0;
    if (live) {
        ACTs qr = act_row(p.qkv, uint(b * p.T + t), C3);
        for (int d = 0; d < HS; d++) q[d] = float(qr.v[hoff + d]) * p.scale;
    }
    for (int d = 0; d < HS; d++) o[d] = 0.0;
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
        float s[BC];
        float mt = m;
        for (int jj = 0; jj < BC; jj++) {
            float x = -1.0 / 0.0;
            if (j0 + jj <= t) {
                x = 0.0;
                for (int d = 0; d < HS; d++) x += q[d] * Ks[jj * HS + d];
            }
            s[jj] = x;
            mt = max(mt, x);
        }
        float corr = exp(m - mt);
        l *= corr;
        for (int d = 0; d < HS; d++) o[d] *= corr;
        m = mt;
        for (int jj = 0; jj < BC; jj++) {
            if (j0 + jj > t) break;
            float e = exp(s[jj] - m);
            l += e;
            for (int d = 0; d < HS; d++) o[d] += e * Vs[jj * HS + d];
        }
    }
    if (!live) return;
    ACTs orow = act_row(p.out_, uint(b * p.T + t), p.C);
    float inv = 1.0 / l;
    for (int d = 0; d < HS; d++) orow.v[hoff + d] = ACT_T(o[d] * inv);
    if (p.lse != 0) F32s(p.lse).v[(b * p.NH + h) * p.T + t] = m + log(l);
}
