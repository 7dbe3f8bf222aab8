#version 450
/* out[i] = index of the largest of logits[i, 0..V) (lowest on ties, NaN
 * never wins, 0 if all are NaN); with pos: hist[i, pos[i]] = out[i] where
 * 0 <= pos[i] < S, then pos[i] += 1. One workgroup per row. */
#include "common.glsl"
layout(local_size_x = 256) in;
/* VEC = 1: rows 16-byte aligned (Vp a multiple of 8 halves or 4 floats):
 * a lane reads 16 bytes at a time, so that one workgroup streams a row of
 * gpt2's 50,304 logits in 25 loads a lane rather than 197, four at a time */
layout(constant_id = 0) const int VEC = 0;
layout(push_constant) uniform PC { uint64_t out_, logits, pos, hist; int N, V, Vp, S; } p;
layout(buffer_reference, std430, buffer_reference_align = 16) buffer U4s { uvec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) buffer V4s { vec4 v[]; };
shared float bv_sh[256];
shared int bi_sh[256];

/* keeps the first largest (NaN never wins) */
void take(float v, int j, inout float bv, inout int bi) {
    if (v > bv || (bi < 0 && v == bv)) bv = v, bi = j;
}
void main() {
    uint row = group_id(), lid = gl_LocalInvocationID.x;
    if (row >= uint(p.N)) return;
    ACTs x = act_row(p.logits, row, p.Vp);
    float bv = -1.0 / 0.0;
    int bi = -1; /* -1: nothing but NaN seen */
    if (VEC == 1) {
#if F16
        /* four loads in flight a lane, taken in index order */
        U4s xr = U4s(p.logits + uint64_t(row) * uint64_t(p.Vp) * 2);
        for (int k0 = int(lid); 8 * k0 < p.V; k0 += 1024) {
            uvec4 q[4];
            for (int u = 0; u < 4; u++) q[u] = 8 * (k0 + 256 * u) < p.V ? xr.v[k0 + 256 * u] : uvec4(0);
            for (int u = 0; u < 4; u++) {
                int k = k0 + 256 * u;
                vec2 h[4] = vec2[4](unpackHalf2x16(q[u].x), unpackHalf2x16(q[u].y), unpackHalf2x16(q[u].z),
                                    unpackHalf2x16(q[u].w));
                for (int i = 0; i < 8 && 8 * k + i < p.V; i++) take(h[i / 2][i % 2], 8 * k + i, bv, bi);
            }
        }
#else
        V4s xr = V4s(p.logits + uint64_t(row) * uint64_t(p.Vp) * 4);
        for (int k = int(lid); 4 * k < p.V; k += 256) {
            vec4 q = xr.v[k];
            for (int i = 0; i < 4 && 4 * k + i < p.V; i++) take(q[i], 4 * k + i, bv, bi);
        }
#endif
    } else {
        for (int j = int(lid); j < p.V; j += 256) take(float(x.v[j]), j, bv, bi);
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
