#version 450
/* KV-cache attention: one workgroup per (row b, query t, head h); the
 * query attends over cache positions 0..p, p = pos0[b] + t, 64 keys at a
 * time: a thread per key for the scores, then a thread per channel for
 * the weighted values, with the running max and sum of an online softmax.
 * Rows with p outside [0, S) are left untouched. */
#include "common.glsl"
layout(local_size_x = 64) in;
layout(push_constant) uniform PC { uint64_t out_, qkv, kc, vc, pos0; int B, Tq, S, C, NH, HS; float scale; } p;
shared float qs[256];
shared float ps[64];
#define MAXD 4 /* head size <= 256 */
void main() {
    uint g = group_id(), lid = gl_LocalInvocationID.x;
    int h = int(g % uint(p.NH)), row = int(g / uint(p.NH));
    if (row >= p.B * p.Tq) return;
    int b = row / p.Tq, t = row % p.Tq;
    int pos = (p.pos0 != 0 ? I32s(p.pos0).v[b] : 0) + t;
    if (pos < 0 || pos >= p.S) return;
    int hoff = h * p.HS;
    ACTs qr = act_row(p.qkv, uint(row), 3 * p.C);
    for (int d = int(lid); d < p.HS; d += 64) qs[d] = float(qr.v[hoff + d]) * p.scale;
    float o[MAXD];
    for (int k = 0; k < MAXD; k++) o[k] = 0.0;
    float m = -1.0 / 0.0, l = 0.0;
    barrier();
    for (int j0 = 0; j0 <= pos; j0 += 64) {
        int j = j0 + int(lid);
        float s = -1.0 / 0.0;
        if (j <= pos) {
            ACTs kr = act_row(p.kc, uint(b * p.S + j), p.C);
            s = 0.0;
            for (int d = 0; d < p.HS; d++) s += qs[d] * float(kr.v[hoff + d]);
        }
        float mt = max(m, block_max(s));
        float corr = exp(m - mt);
        float e = j <= pos ? exp(s - mt) : 0.0;
        ps[lid] = e;
        l = l * corr + block_sum(e);
        m = mt;
        barrier();
        int n = min(64, pos + 1 - j0);
        for (int k = 0; k < MAXD; k++) {
            int d = int(lid) + 64 * k;
            if (d >= p.HS) break;
            float acc = o[k] * corr;
            for (int jj = 0; jj < n; jj++) acc += ps[jj] * float(act_row(p.vc, uint(b * p.S + j0 + jj), p.C).v[hoff + d]);
            o[k] = acc;
        }
        barrier();
    }
    ACTs orow = act_row(p.out_, uint(row), p.C);
    for (int k = 0; k < MAXD; k++) {
        int d = int(lid) + 64 * k;
        if (d < p.HS) orow.v[hoff + d] = ACT_T(o[k] / l);
    }
}
