#version 450
/* y (M, N) = x' (M, K) w (N, K)^T + bias [, GELU] for few rows (M <= 8,
 * decoding): bound by reading w once, and at decoding's sizes by how many
 * loads are in flight. An output column is computed by G subgroups, each
 * over its slice of K (the host picks G so that a lane has at most a few
 * 16-byte loads: a long row on one subgroup would be a chain of DRAM round
 * trips), a lane issuing four loads of w before it uses them; the slices'
 * sums are added in slice order, so the result does not depend on timing.
 * VEC = 1: 16-byte loads of w (K a multiple of 8 halves or 4 floats and
 * 16-byte aligned rows). Folds (backend.h's optional decoding ops), so that
 * a decoding layer is fewer dispatches:
 *   PRE = 1: x' = layernorm(x) * lnw + lnb, computed by every workgroup
 *            into shared memory first (M * K <= 4096), kept in fp32;
 *   PRE = 2: x' = the decoding attention's output, merged by every
 *            workgroup from attn_kv_split.comp's chunks (x points to them)
 *            into shared memory, as attn_kv_combine.comp would write it;
 *            rows whose position is outside [0, S) are not written;
 *   RES = 1: out += y (the residual add), rounded once.
 * Otherwise x' = x. */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(constant_id = 0) const int VEC = 0;
layout(constant_id = 1) const int PRE = 0;
layout(constant_id = 2) const int RES = 0;
layout(constant_id = 3) const int G = 1;
layout(push_constant) uniform PC {
    uint64_t out_, pre, x, w, bias, lnw, lnb; /* PRE = 2: lnw is pos0 (I32, M) */
    int M, N, K, gelu_on, per_group;
    float eps;
    int S, NH, NS; /* PRE = 2: cache length, heads, chunks a head */
} p;
layout(buffer_reference, std430, buffer_reference_align = 16) buffer U4s { uvec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) buffer V4s { vec4 v[]; };
#define MAXM 8
#define MAXX 4096
#define U 4 /* loads of w a lane issues before using them */
shared float xs[MAXX];
shared float part_sh[64 * MAXM]; /* slice sums: [subgroup][row] */
shared bool skip_sh[MAXM];       /* PRE = 2: rows left untouched */

/* Eight consecutive inputs of row i from position 8k (VEC, fp16 build). */
void x8(int i, uint k, out vec4 a, out vec4 b) {
    if (PRE != 0) {
        uint o = uint(i) * uint(p.K) + 8 * k;
        a = vec4(xs[o], xs[o + 1], xs[o + 2], xs[o + 3]);
        b = vec4(xs[o + 4], xs[o + 5], xs[o + 6], xs[o + 7]);
    } else {
        uvec4 q = U4s(p.x + uint64_t(i) * uint64_t(p.K) * 2).v[k];
        a = vec4(unpackHalf2x16(q.x), unpackHalf2x16(q.y));
        b = vec4(unpackHalf2x16(q.z), unpackHalf2x16(q.w));
    }
}

vec4 x4(int i, uint k) {
    if (PRE != 0) {
        uint o = uint(i) * uint(p.K) + 4 * k;
        return vec4(xs[o], xs[o + 1], xs[o + 2], xs[o + 3]);
    }
    return V4s(p.x + uint64_t(i) * uint64_t(p.K) * 4).v[k];
}

float x1(int i, uint k) {
    return PRE != 0 ? xs[uint(i) * uint(p.K) + k] : float(act_row(p.x, uint(i), p.K).v[k]);
}

/* This lane's partial dot products of column n with every row, over the
 * slice [kb, ke) of K (in 16-byte vectors where VEC = 1, else elements). */
void slice(uint n, uint kb, uint ke, inout float acc[MAXM]) {
    uint lane = gl_SubgroupInvocationID, L = gl_SubgroupSize;
    if (VEC == 1) {
#if F16
        U4s wr = U4s(p.w + uint64_t(n) * uint64_t(p.K) * 2);
        for (uint k0 = kb + lane; k0 < ke; k0 += U * L) {
            uvec4 q[U];
            for (int u = 0; u < U; u++) {
                uint k = k0 + uint(u) * L;
                q[u] = k < ke ? wr.v[k] : uvec4(0);
            }
            for (int u = 0; u < U; u++) {
                uint k = k0 + uint(u) * L;
                if (k >= ke) break;
                vec4 wa = vec4(unpackHalf2x16(q[u].x), unpackHalf2x16(q[u].y));
                vec4 wb = vec4(unpackHalf2x16(q[u].z), unpackHalf2x16(q[u].w));
                for (int i = 0; i < MAXM; i++) {
                    if (i >= p.M) break;
                    vec4 xa, xb;
                    x8(i, k, xa, xb);
                    acc[i] += dot(wa, xa) + dot(wb, xb);
                }
            }
        }
#else
        V4s wr = V4s(p.w + uint64_t(n) * uint64_t(p.K) * 4);
        for (uint k0 = kb + lane; k0 < ke; k0 += U * L) {
            vec4 q[U];
            for (int u = 0; u < U; u++) {
                uint k = k0 + uint(u) * L;
                q[u] = k < ke ? wr.v[k] : vec4(0.0);
            }
            for (int u = 0; u < U; u++) {
                uint k = k0 + uint(u) * L;
                if (k >= ke) break;
                for (int i = 0; i < MAXM; i++) {
                    if (i >= p.M) break;
                    acc[i] += dot(q[u], x4(i, k));
                }
            }
        }
#endif
    } else {
        ACTs wr = act_row(p.w, n, p.K);
        for (uint k = kb + lane; k < ke; k += L) {
            float wv = float(wr.v[k]);
            for (int i = 0; i < MAXM; i++) {
                if (i >= p.M) break;
                acc[i] += wv * x1(i, k);
            }
        }
    }
}

/* Row i's output at column n from its full dot product y. */
void finish(uint n, int i, float y) {
    if (PRE == 2 && skip_sh[i]) return;
    y += p.bias != 0 ? float(ACTs(p.bias).v[n]) : 0.0;
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

/* The attention outputs of the M rows into xs: for row i and head h, the
 * chunks 0..pos/64 that attn_kv_split wrote merged (common.glsl's
 * kv_merge), rounded to the storage type as the separate combine's store
 * would. */
void combine_rows() {
    uint lid = gl_LocalInvocationID.x;
    int HS = p.K / p.NH;
    uint stride = uint(HS + 2);
    if (lid < uint(p.M)) {
        int pos = I32s(p.lnw).v[lid];
        skip_sh[lid] = pos < 0 || pos >= p.S;
    }
    barrier();
    for (uint e = lid; e < uint(p.M * p.K); e += 256) {
        int i = int(e / uint(p.K)), c = int(e % uint(p.K)), h = c / HS, d = c % HS;
        if (skip_sh[i]) continue;
        int n = I32s(p.lnw).v[i] / 64 + 1; /* the chunks that hold keys */
        F32s part = F32s(p.x + uint64_t((uint(i) * uint(p.NH) + uint(h)) * uint(p.NS)) * uint64_t(stride) * 4);
        xs[e] = rnd(kv_merge(part, stride, n, d));
    }
    barrier();
}

/* The host gives each workgroup per_group columns ((256 / the subgroup
 * size the device reports) / G). The loop keeps that right if a pipeline
 * runs with another subgroup size: the split is at most the subgroups
 * there are, and every subgroup goes round the loop as often as the
 * others (the slice sums meet at barriers). */
void main() {
    if (PRE == 1) normalize_rows();
    if (PRE == 2) combine_rows();
    uint nsub = gl_NumSubgroups, g = min(uint(G), nsub), cols = nsub / g;
    uint sub = gl_SubgroupID, slot = sub / g, s = sub % g;
    uint first = group_id() * uint(p.per_group), last = min(first + uint(p.per_group), uint(p.N));
    uint nk = VEC == 1 ? uint(p.K) / (F16 == 1 ? 8 : 4) : uint(p.K);
    uint per = (nk + g - 1) / g, kb = min(s * per, nk), ke = min(kb + per, nk);
    for (uint base = first; base < last; base += cols) {
        uint n = base + slot;
        bool mine = slot < cols && n < last;
        float acc[MAXM];
        for (int i = 0; i < MAXM; i++) acc[i] = 0.0;
        if (mine) slice(n, kb, ke, acc);
        if (G == 1) {
            for (int i = 0; i < MAXM; i++) {
                if (i >= p.M) break;
                float y = subgroupAdd(acc[i]);
                if (mine && subgroupElect()) finish(n, i, y);
            }
            continue;
        }
        for (int i = 0; i < MAXM; i++) {
            if (i >= p.M) break;
            float y = subgroupAdd(acc[i]);
            if (subgroupElect()) part_sh[sub * MAXM + uint(i)] = y;
        }
        barrier();
        if (mine && s == 0 && subgroupElect())
            for (int i = 0; i < MAXM; i++) {
                if (i >= p.M) break;
                float y = 0.0;
                for (uint j = 0; j < g; j++) y += part_sh[(sub + j) * MAXM + uint(i)];
                finish(n, i, y);
            }
        barrier();
    }
}
