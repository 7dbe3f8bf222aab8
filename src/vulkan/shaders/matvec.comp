#version 450
/* y (M, N) = x' (M, K) w (N, K)^T + bias [, GELU] for few rows (M <= 8,
 * decoding): bound by reading w once. One subgroup per output column: its
 * lanes stride over K (VEC = 1: 16-byte loads of w, K a multiple of 8
 * halves or 4 floats and 16-byte aligned rows), partial dot products for
 * every row, then a subgroup sum. Folds (backend.h's optional decoding
 * ops), so that a decoding layer is fewer dispatches:
 *   LNF = 1: x' = layernorm(x) * lnw + lnb, computed by every workgroup
 *            into shared memory first (M * K <= 4096), kept in fp32;
 *   RES = 1: out += y (the residual add), rounded once.
 * Otherwise x' = x. */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(constant_id = 0) const int VEC = 0;
layout(constant_id = 1) const int LNF = 0;
layout(constant_id = 2) const int RES = 0;
layout(push_constant) uniform PC {
    uint64_t out_, pre, x, w, bias, lnw, lnb;
    int M, N, K, gelu_on, per_group;
    float eps;
} p;
layout(buffer_reference, std430, buffer_reference_align = 16) buffer U4s { uvec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) buffer V4s { vec4 v[]; };
#define MAXM 8
#define MAXX 4096
shared float xs[MAXX];

/* Eight consecutive inputs of row i from position 8k (VEC, fp16 build). */
void x8(int i, uint k, out vec4 a, out vec4 b) {
    if (LNF == 1) {
        uint o = uint(i) * uint(p.K) + 8 * k;
        a = vec4(xs[o], xs[o + 1], xs[o + 2], xs[o + 3]);
        b = vec4(xs[o + 4], xs[o + 5], xs[o + 6], xs[o + 7]);
    } else {
        uvec4 q = U4s(p.x + uint64_t(i) * uint64_t(p.K) * 2).v[k];
        a = vec4(unpackHalf2x16(q.x), unpackHalf2x16(q.y));
        b = vec4(unpackHalf2x16(q.z), unpackHalf2x16(q.w));
    }
}

float x1(int i, uint k) {
    return LNF == 1 ? xs[uint(i) * uint(p.K) + k] : float(act_row(p.x, uint(i), p.K).v[k]);
}

/* Output column n, computed by one subgroup. */
void column(uint n) {
    float acc[MAXM];
    for (int i = 0; i < MAXM; i++) acc[i] = 0.0;
    uint lane = gl_SubgroupInvocationID, L = gl_SubgroupSize;
    if (VEC == 1) {
#if F16
        uint nv = uint(p.K) / 8;
        U4s wr = U4s(p.w + uint64_t(n) * uint64_t(p.K) * 2);
        for (uint k = lane; k < nv; k += L) {
            uvec4 q = wr.v[k];
            vec4 wa = vec4(unpackHalf2x16(q.x), unpackHalf2x16(q.y));
            vec4 wb = vec4(unpackHalf2x16(q.z), unpackHalf2x16(q.w));
            for (int i = 0; i < MAXM; i++) {
                if (i >= p.M) break;
                vec4 xa, xb;
                x8(i, k, xa, xb);
                acc[i] += dot(wa, xa) + dot(wb, xb);
            }
        }
#else
        uint nv = uint(p.K) / 4;
        V4s wr = V4s(p.w + uint64_t(n) * uint64_t(p.K) * 4);
        for (uint k = lane; k < nv; k += L) {
            vec4 wv = wr.v[k];
            for (int i = 0; i < MAXM; i++) {
                if (i >= p.M) break;
                vec4 xv = LNF == 1 ? vec4(x1(i, 4 * k), x1(i, 4 * k + 1), x1(i, 4 * k + 2), x1(i, 4 * k + 3))
                                   : V4s(p.x + uint64_t(i) * uint64_t(p.K) * 4).v[k];
                acc[i] += dot(wv, xv);
            }
        }
#endif
    } else {
        ACTs wr = act_row(p.w, n, p.K);
        for (uint k = lane; k < uint(p.K); k += L) {
            float wv = float(wr.v[k]);
            for (int i = 0; i < MAXM; i++) {
                if (i >= p.M) break;
                acc[i] += wv * x1(i, k);
            }
        }
    }
    float b = p.bias != 0 ? float(ACTs(p.bias).v[n]) : 0.0;
    for (int i = 0; i < MAXM; i++) {
        if (i >= p.M) break;
        float y = subgroupAdd(acc[i]) + b;
        if (subgroupElect()) {
            ACTs o = act_row(p.out_, uint(i), p.N);
            if (RES == 1) {
                o.v[n] = ACT_T(float(o.v[n]) + y);
            } else {
                if (p.gelu_on != 0) {
                    if (p.pre != 0) act_row(p.pre, uint(i), p.N).v[n] = ACT_T(y);
                    y = gelu(y);
                }
                o.v[n] = ACT_T(y);
            }
        }
    }
}

/* The layernorm of the M input rows into xs (every workgroup: a decoding
 * row is a few thousand values, the weights it multiplies are millions). */
void normalize_rows() {
    uint lid = gl_LocalInvocationID.x;
    ACTs lw = ACTs(p.lnw), lb = ACTs(p.lnb);
    for (int i = 0; i < p.M; i++) {
        ACTs xr = act_row(p.x, uint(i), p.K);
        float s = 0.0;
        for (uint k = lid; k < uint(p.K); k += 256) s += float(xr.v[k]);
        float mean = block_sum(s) / float(p.K);
        float ss = 0.0;
        for (uint k = lid; k < uint(p.K); k += 256) {
            float d = float(xr.v[k]) - mean;
            ss += d * d;
        }
        float rstd = 1.0 / sqrt(block_sum(ss) / float(p.K) + p.eps);
        for (uint k = lid; k < uint(p.K); k += 256)
            xs[uint(i) * uint(p.K) + k] = (float(xr.v[k]) - mean) * rstd * float(lw.v[k]) + float(lb.v[k]);
    }
    barrier();
}

/* The host gives each workgroup per_group columns (256 / the subgroup size
 * the device reports); the loop keeps that right if a pipeline runs with
 * other subgroup sizes. */
void main() {
    if (LNF == 1) normalize_rows();
    uint first = group_id() * uint(p.per_group), last = min(first + uint(p.per_group), uint(p.N));
    for (uint n = first + gl_SubgroupID; n < last; n += gl_NumSubgroups) column(n);
}
