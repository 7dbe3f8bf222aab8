#version 450
/* KV-cache attention for decoding, split over keys: a workgroup per (row,
 * head, chunk of 64 cache positions), so that one query row's attention
 * over S positions keeps S / 64 workgroups busy instead of one (batch 1
 * would otherwise run a dozen workgroups on a GPU of a hundred cores).
 * Row = (b, t), p = pos0[b] + t. Each chunk writes its partial result for
 * keys j0..min(j0 + 63, p): the max score m, the sum of exp(s - m) l, and
 * o = sum exp(s - m) v (unnormalised), to part[(row * NH + h) * NS + chunk]
 * (m, l, then HS values); a chunk past p writes m = -inf, l = 0.
 * attn_kv_combine.comp then merges the chunks in order. Rows with p
 * outside [0, S) are skipped (the combine leaves them untouched).
 * VEC = 1: a key is read 16 bytes at a time (fp16: HS and C multiples of
 * 8; fp32: of 4). STORE = 1 (one query a row, Tq = 1): the chunk holding p
 * also appends the row's k and v at p (attn_kv_store's work, one dispatch
 * and barrier fewer a layer) and reads that key and value from qkv, not
 * from the cache it is writing. */
#include "common.glsl"
layout(local_size_x = 64) in;
layout(constant_id = 0) const int VEC = 0;
layout(constant_id = 1) const int STORE = 0;
layout(push_constant) uniform PC { uint64_t part, qkv, kc, vc, pos0; int B, Tq, S, C, NH, HS, NS; float scale; } p;
layout(buffer_reference, std430, buffer_reference_align = 16) buffer U4s { uvec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) buffer V4s { vec4 v[]; };
shared float qs[256];
shared float ps[64];
shared float acc_sh[64 * 8]; /* VEC = 1: R partial value sums of HS floats, R * HS <= 64 * PER */

void main() {
    uint lid = gl_LocalInvocationID.x;
    int h = int(gl_WorkGroupID.x % uint(p.NH)), row = int(gl_WorkGroupID.x / uint(p.NH));
    int chunk = int(gl_WorkGroupID.y);
    if (row >= p.B * p.Tq) return;
    int b = row / p.Tq, t = row % p.Tq;
    int pos = (p.pos0 != 0 ? I32s(p.pos0).v[b] : 0) + t;
    if (pos < 0 || pos >= p.S) return;
    uint rec = (uint(row) * uint(p.NH) + uint(h)) * uint(p.NS) + uint(chunk);
    F32s part = F32s(p.part + uint64_t(rec) * uint64_t(p.HS + 2) * 4);
    int j0 = chunk * 64;
    if (j0 > pos) {
        if (lid == 0) {
            part.v[0] = -1.0 / 0.0;
            part.v[1] = 0.0;
        }
        return;
    }
    int hoff = h * p.HS;
    ACTs qr = act_row(p.qkv, uint(row), 3 * p.C);
    for (int d = int(lid); d < p.HS; d += 64) qs[d] = float(qr.v[hoff + d]) * p.scale;
    bool mine = STORE == 1 && pos < j0 + 64; /* this chunk holds p */
    if (mine)
        for (int d = int(lid); d < p.HS; d += 64) {
            act_row(p.kc, uint(b * p.S + pos), p.C).v[hoff + d] = qr.v[p.C + hoff + d];
            act_row(p.vc, uint(b * p.S + pos), p.C).v[hoff + d] = qr.v[2 * p.C + hoff + d];
        }
    barrier();
    int j = j0 + int(lid);
    float s = -1.0 / 0.0;
    if (j <= pos) {
        uint64_t krow = mine && j == pos
                            ? p.qkv + (uint64_t(row) * uint64_t(3 * p.C) + uint64_t(p.C + hoff)) * AB
                            : p.kc + (uint64_t(b * p.S + j) * uint64_t(p.C) + uint64_t(hoff)) * AB;
        s = 0.0;
        if (VEC == 1) {
#if F16
            U4s kr = U4s(krow);
            for (int d8 = 0; d8 < p.HS / 8; d8++) {
                uvec4 q = kr.v[d8];
                int d = 8 * d8;
                vec2 k0 = unpackHalf2x16(q.x), k1 = unpackHalf2x16(q.y), k2 = unpackHalf2x16(q.z), k3 = unpackHalf2x16(q.w);
                s += qs[d] * k0.x + qs[d + 1] * k0.y + qs[d + 2] * k1.x + qs[d + 3] * k1.y +
                     qs[d + 4] * k2.x + qs[d + 5] * k2.y + qs[d + 6] * k3.x + qs[d + 7] * k3.y;
            }
#else
            V4s kr = V4s(krow);
            for (int d4 = 0; d4 < p.HS / 4; d4++) {
                vec4 k = kr.v[d4];
                int d = 4 * d4;
                s += qs[d] * k.x + qs[d + 1] * k.y + qs[d + 2] * k.z + qs[d + 3] * k.w;
            }
#endif
        } else {
            ACTs kr = ACTs(krow);
            for (int d = 0; d < p.HS; d++) s += qs[d] * float(kr.v[d]);
        }
    }
    float m = block_max(s);
    float e = j <= pos ? exp(s - m) : 0.0;
    ps[lid] = e;
    float l = block_sum(e); /* its barriers also publish ps */
    int n = min(64, pos + 1 - j0);
    if (VEC == 1) {
        /* The values 16 bytes a lane: G lanes cover a key's head slice and
         * the 64 lanes R keys at once, so a lane issues n / R independent
         * loads where one lane a dimension issued n dependent rounds (64
         * trips to memory at a full chunk, the kernel's critical path). The
         * R partial sums are added in order through acc_sh. */
        const int PER = F16 == 1 ? 8 : 4;
        int G = p.HS / PER, R = 64 / G, g = int(lid) % G, r = int(lid) / G;
        float acc[8] = float[8](0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        if (r < R)
            for (int jj = r; jj < n; jj += R) {
                uint64_t vrow = mine && jj == n - 1
                                    ? p.qkv + (uint64_t(row) * uint64_t(3 * p.C) + uint64_t(2 * p.C + hoff)) * AB
                                    : p.vc + (uint64_t(b * p.S + j0 + jj) * uint64_t(p.C) + uint64_t(hoff)) * AB;
                float w = ps[jj];
#if F16
                uvec4 q = U4s(vrow).v[g];
                vec2 v0 = unpackHalf2x16(q.x), v1 = unpackHalf2x16(q.y), v2 = unpackHalf2x16(q.z), v3 = unpackHalf2x16(q.w);
                acc[0] += w * v0.x, acc[1] += w * v0.y, acc[2] += w * v1.x, acc[3] += w * v1.y;
                acc[4] += w * v2.x, acc[5] += w * v2.y, acc[6] += w * v3.x, acc[7] += w * v3.y;
#else
                vec4 q = V4s(vrow).v[g];
                acc[0] += w * q.x, acc[1] += w * q.y, acc[2] += w * q.z, acc[3] += w * q.w;
#endif
            }
        if (r < R)
            for (int i = 0; i < PER; i++) acc_sh[r * p.HS + PER * g + i] = acc[i];
        barrier();
        for (int d = int(lid); d < p.HS; d += 64) {
            float o = 0.0;
            for (int k = 0; k < R && k < n; k++) o += acc_sh[k * p.HS + d];
            part.v[2 + d] = o;
        }
    } else {
        for (int d = int(lid); d < p.HS; d += 64) {
            float acc = 0.0;
            int nc = mine ? n - 1 : n; /* with STORE, p is the last key and comes from qkv */
            for (int jj = 0; jj < nc; jj++)
                acc += ps[jj] * float(act_row(p.vc, uint(b * p.S + j0 + jj), p.C).v[hoff + d]);
            if (mine) acc += ps[n - 1] * float(qr.v[2 * p.C + hoff + d]);
            part.v[2 + d] = acc;
        }
    }
    if (lid == 0) {
        part.v[0] = m;
        part.v[1] = l;
    }
}
