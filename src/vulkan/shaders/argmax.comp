#version 450
/* out[i] = index of the largest of logits[i, 0..V) (lowest on ties, NaN
 * never wins, 0 if all are NaN); with pos: hist[i, pos[i]] = out[i] where
 * 0 <= pos[i] < S, then pos[i] += 1. One workgroup per row. */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { uint64_t out_, logits, pos, hist; int N, V, Vp, S; } p;
shared float bv_sh[256];
shared int bi_sh[256];
void main() {
    uint row = group_id(), lid = gl_LocalInvocationID.x;
    if (row >= uint(p.N)) return;
    ACTs x = act_row(p.logits, row, p.Vp);
    float bv = -1.0 / 0.0;
    int bi = -1; /* -1: nothing but NaN seen */
    for (int j = int(lid); j < p.V; j += 256) {
        float v = float(x.v[j]);
        if (v > bv || (bi < 0 && v == bv)) bv = v, bi = j;
    }
    bv_sh[lid] = bv;
    bi_sh[lid] = bi;
    barrier();
    for (uint s = 128; s > 0; s >>= 1) {
        if (lid < s) {
            float ov = bv_sh[lid + s];
            int oi = bi_sh[lid + s];
            int mi = bi_sh[lid];
            bool take = oi >= 0 && (mi < 0 || ov > bv_sh[lid] || (ov == bv_sh[lid] && oi < mi));
            if (take) bv_sh[lid] = ov, bi_sh[lid] = oi;
        }
        barrier();
    }
    if (lid == 0) {
        int best = max(bi_sh[0], 0);
        I32s(p.out_).v[row] = best;
        if (p.pos != 0) {
            I32s ps = I32s(p.pos);
            int q = ps.v[row];
            if (p.hist != 0 && q >= 0 && q < p.S) I32s(p.hist).v[row * uint(p.S) + uint(q)] = best;
            ps.v[row] = q + 1;
        }
    }
}
