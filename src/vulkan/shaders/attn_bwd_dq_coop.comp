#version 450
/* Causal flash attention backward, queries, on cooperative matrices (fp16
 * builds only; attn_bwd_dq.comp's contract): D = rowsum(dO * O), written
 * for the key kernel, and dq = scale * dS K with dS = P * (dO V^T - D),
 * P = exp(scale Q K^T - lse). Taken where attn_fwd_coop.comp is, with the
 * same layout: a workgroup (4 subgroups of 32) takes 64 queries of one
 * (row, head), 16 a subgroup, whose Q and dO stay in registers as
 * HS / 16 A matrices each. Per 64 keys, K and V are staged; S = Q K^T
 * goes through a per-subgroup fp32 patch, where lanes 2r and 2r + 1 turn
 * row r into P (kept in their registers, 32 values each); dP = dO V^T
 * goes through the same patch, and the lanes write dS in fp16 for the
 * product dq += dS K, which stays in accumulators until the end. dS is
 * rounded to fp16 for the product, as P is in the forward. Shared memory:
 * 43 KiB at HS = 64. */
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_shuffle : require
#include "common.glsl"

layout(local_size_x = 128) in;
layout(constant_id = 0) const int HS = 64;
layout(constant_id = 1) const int LN = 16; /* accumulator columns: 16 or 8 */
layout(constant_id = 2) const int VEC = 0; /* 16-byte aligned rows: 16-byte loads */
layout(buffer_reference, std430, buffer_reference_align = 16) buffer U4s { uvec4 v[]; };
const int BR = 64, BC = 64, PAD = 8, SUB = 16;
const int HP = HS + PAD;          /* staged row stride of Q, dO, K, V (halves) */
const int PP = BC + PAD;          /* row stride of dS (halves) */
const int SW = BC > HS ? BC : HS; /* the fp32 patch's row: S, dP or dq */
const int HALF = BC / 2;

layout(push_constant) uniform PC { uint64_t dqkv, dout, qkv, out_, lse, dd; int B, T, C, NH; float scale; } p;

shared float16_t Ks[BC * HP]; /* Q first, then each round's K */
shared float16_t Vs[BC * HP]; /* dO first, then each round's V */
shared float Ss[4 * SUB * SW];
shared float16_t Ps[4 * SUB * PP];

/* The 8 halves at columns [col + d, col + d + 8) of row t of a (B, T, ld)
 * matrix (zeros past T): one 16-byte load where VEC says the rows are
 * 16-byte aligned (C a multiple of 8 and aligned buffers). */
void load8(uint64_t base, int ld, int col, int t, int b, int d, out float16_t x[8]) {
    if (t >= p.T) {
        for (int i = 0; i < 8; i++) x[i] = float16_t(0.0);
    } else if (VEC == 1) {
        uvec4 q = U4s(base + (uint64_t(b * p.T + t) * uint64_t(ld) + uint64_t(col + d)) * 2).v[0];
        for (int i = 0; i < 4; i++) {
            f16vec2 h = unpackFloat2x16(q[i]);
            x[2 * i] = h.x, x[2 * i + 1] = h.y;
        }
    } else {
        ACTs row = act_row(base, uint(b * p.T + t), ld);
        for (int i = 0; i < 8; i++) x[i] = row.v[col + d + i];
    }
}

/* rows [r0, r0 + 64) of head h's columns at col of a (B, T, ld) matrix
 * into Ks (dst 0) or Vs (dst 1), zero past T */
void stage(uint64_t base, int ld, int col, int r0, int b, int dst) {
    for (uint e = gl_LocalInvocationID.x; e < uint(64 * HS / 8); e += 128) {
        int r = int(e) / (HS / 8), d = int(e) % (HS / 8) * 8;
        float16_t x[8];
        load8(base, ld, col, r0 + r, b, d, x);
        for (int i = 0; i < 8; i++) {
            if (dst == 0) Ks[r * HP + d + i] = x[i];
            else Vs[r * HP + d + i] = x[i];
        }
    }
}

void sync_subgroup() {
    subgroupMemoryBarrierShared();
    subgroupBarrier();
}

void main() {
    uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    int q0 = int(gl_WorkGroupID.x) * BR, h = int(gl_WorkGroupID.y), b = int(gl_WorkGroupID.z);
    int r = int(lane) / 2, hf = int(lane) % 2; /* this lane's query row and half */
    int t = q0 + int(sg) * SUB + r, C3 = 3 * p.C, hoff = h * HS;
    uint sbase = sg * uint(SUB * SW), pbase = sg * uint(SUB * PP);
    bool live = t < p.T;

    /* D = rowsum(dO * O) for this lane's row, half a row a lane */
    float D = 0.0, lse = 0.0;
    if (live) {
        ACTs dr = act_row(p.dout, uint(b * p.T + t), p.C), orow = act_row(p.out_, uint(b * p.T + t), p.C);
        for (int d = hf * (HS / 2); d < (hf + 1) * (HS / 2); d++)
            D += float(dr.v[hoff + d]) * float(orow.v[hoff + d]);
    }
    D += subgroupShuffleXor(D, 1);
    int li = (b * p.NH + h) * p.T + min(t, p.T - 1);
    if (live) {
        lse = F32s(p.lse).v[li];
        if (hf == 0) F32s(p.dd).v[li] = D;
    }

    stage(p.qkv, C3, hoff, q0, b, 0);
    stage(p.dout, p.C, hoff, q0, b, 1);
    barrier();
    fcoopmatNV<16, gl_ScopeSubgroup, SUB, 16> qa[HS / 16], da[HS / 16];
    for (int k = 0; k < HS / 16; k++) {
        coopMatLoadNV(qa[k], Ks, uint(int(sg) * SUB * HP + k * 16), uint(HP), false);
        coopMatLoadNV(da[k], Vs, uint(int(sg) * SUB * HP + k * 16), uint(HP), false);
    }
    fcoopmatNV<32, gl_ScopeSubgroup, SUB, LN> dq[HS / LN];
    for (int n = 0; n < HS / LN; n++) dq[n] = fcoopmatNV<32, gl_ScopeSubgroup, SUB, LN>(0.0);

    float pr[HALF];
    int last = min(q0 + BR - 1, p.T - 1);
    for (int j0 = 0; j0 <= last; j0 += BC) {
        barrier(); /* Q and dO loaded (first round); K, V of the last round consumed */
        stage(p.qkv, C3, p.C + hoff, j0, b, 0);
        stage(p.qkv, C3, 2 * p.C + hoff, j0, b, 1);
        barrier();
        /* S = Q K^T: K staged [key][d] is K^T column-major */
        for (int n = 0; n < BC / LN; n++) {
            fcoopmatNV<32, gl_ScopeSubgroup, SUB, LN> s = fcoopmatNV<32, gl_ScopeSubgroup, SUB, LN>(0.0);
            for (int k = 0; k < HS / 16; k++) {
                fcoopmatNV<16, gl_ScopeSubgroup, 16, LN> kb;
                coopMatLoadNV(kb, Ks, uint(n * LN * HP + k * 16), uint(HP), true);
                s = coopMatMulAddNV(qa[k], kb, s);
            }
            coopMatStoreNV(s, Ss, sbase + uint(n * LN), uint(SW), false);
        }
        sync_subgroup();
        for (int i = 0; i < HALF; i++) {
            int jj = hf * HALF + i, j = j0 + jj;
            float x = Ss[sbase + uint(r * SW + jj)];
            pr[i] = live && j <= t ? exp(x * p.scale - lse) : 0.0;
        }
        sync_subgroup();
        /* dP = dO V^T, V staged [key][d] as K is */
        for (int n = 0; n < BC / LN; n++) {
            fcoopmatNV<32, gl_ScopeSubgroup, SUB, LN> s = fcoopmatNV<32, gl_ScopeSubgroup, SUB, LN>(0.0);
            for (int k = 0; k < HS / 16; k++) {
                fcoopmatNV<16, gl_ScopeSubgroup, 16, LN> vb;
                coopMatLoadNV(vb, Vs, uint(n * LN * HP + k * 16), uint(HP), true);
                s = coopMatMulAddNV(da[k], vb, s);
            }
            coopMatStoreNV(s, Ss, sbase + uint(n * LN), uint(SW), false);
        }
        sync_subgroup();
        for (int i = 0; i < HALF; i++) {
            int jj = hf * HALF + i;
            Ps[pbase + uint(r * PP + jj)] = float16_t(pr[i] * (Ss[sbase + uint(r * SW + jj)] - D));
        }
        sync_subgroup();
        /* dq += dS K: dS row-major A, K staged [key][d] row-major B */
        fcoopmatNV<16, gl_ScopeSubgroup, SUB, 16> sa[BC / 16];
        for (int k = 0; k < BC / 16; k++) coopMatLoadNV(sa[k], Ps, pbase + uint(k * 16), uint(PP), false);
        for (int n = 0; n < HS / LN; n++)
            for (int k = 0; k < BC / 16; k++) {
                fcoopmatNV<16, gl_ScopeSubgroup, 16, LN> kb;
                coopMatLoadNV(kb, Ks, uint(k * 16 * HP + n * LN), uint(HP), false);
                dq[n] = coopMatMulAddNV(sa[k], kb, dq[n]);
            }
    }
    sync_subgroup();
    for (int n = 0; n < HS / LN; n++) coopMatStoreNV(dq[n], Ss, sbase + uint(n * LN), uint(SW), false);
    sync_subgroup();
    if (!live) return;
    ACTs o = act_row(p.dqkv, uint(b * p.T + t), C3);
    for (int i = 0; i < HS / 2; i++) {
        int d = hf * (HS / 2) + i;
        o.v[hoff + d] = ACT_T(Ss[sbase + uint(r * SW + d)] * p.scale);
    }
}
