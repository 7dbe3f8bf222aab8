#version 450
/* Causal flash attention backward, keys, on cooperative matrices (fp16
 * builds only; attn_bwd_dk.comp's and attn_bwd_dv.comp's contracts in
 * one pass): dv = P^T dO and dk = scale * dS^T Q, with P = exp(scale
 * Q K^T - lse) and dS = P * (dO V^T - D) (D from attn_bwd_dq_coop.comp,
 * which runs first). A workgroup (4 subgroups of 32) takes 64 keys of one
 * (row, head), 16 a subgroup, whose K and V stay in registers as HS / 16 A
 * matrices each; per 64 queries at or after the keys, Q and dO are staged
 * with their lse and D; S^T = K Q^T goes through a per-subgroup fp32
 * patch, where lanes 2r and 2r + 1 turn key row r into P^T (kept in
 * registers, 32 values each, and written in fp16 for dv += P^T dO);
 * dP^T = V dO^T goes through the same patch, the lanes write dS^T in fp16
 * over P^T, and dk += dS^T Q. dv and dk stay in accumulators until the
 * end. Shared memory: 43.5 KiB at HS = 64. */
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#include "common.glsl"

layout(local_size_x = 128) in;
layout(constant_id = 0) const int HS = 64;
layout(constant_id = 1) const int LN = 16; /* accumulator columns: 16 or 8 */
layout(constant_id = 2) const int VEC = 0; /* 16-byte aligned rows: 16-byte loads */
layout(buffer_reference, std430, buffer_reference_align = 16) buffer U4s { uvec4 v[]; };
const int BR = 64, BC = 64, PAD = 8, SUB = 16;
const int HP = HS + PAD;          /* staged row stride of K, V, Q, dO (halves) */
const int PP = BR + PAD;          /* row stride of P^T and dS^T (halves) */
const int SW = BR > HS ? BR : HS; /* the fp32 patch's row */
const int HALF = BR / 2;

layout(push_constant) uniform PC { uint64_t dqkv, dout, qkv, lse, dd; int B, T, C, NH; float scale; } p;

shared float16_t Qs[BR * HP]; /* K first, then each round's Q */
shared float16_t Os[BR * HP]; /* V first, then each round's dO */
shared float Ss[4 * SUB * SW];
shared float16_t Ps[4 * SUB * PP];
shared float Ls[BR], Ds[BR];

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
 * into Qs (dst 0) or Os (dst 1), zero past T */
void stage(uint64_t base, int ld, int col, int r0, int b, int dst) {
    for (uint e = gl_LocalInvocationID.x; e < uint(64 * HS / 8); e += 128) {
        int r = int(e) / (HS / 8), d = int(e) % (HS / 8) * 8;
        float16_t x[8];
        load8(base, ld, col, r0 + r, b, d, x);
        for (int i = 0; i < 8; i++) {
            if (dst == 0) Qs[r * HP + d + i] = x[i];
            else Os[r * HP + d + i] = x[i];
        }
    }
}

void sync_subgroup() {
    subgroupMemoryBarrierShared();
    subgroupBarrier();
}

void main() {
    uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID, lid = gl_LocalInvocationID.x;
    int k0 = int(gl_WorkGroupID.x) * BC, h = int(gl_WorkGroupID.y), b = int(gl_WorkGroupID.z);
    int r = int(lane) / 2, hf = int(lane) % 2; /* this lane's key row and half */
    int j = k0 + int(sg) * SUB + r, C3 = 3 * p.C, hoff = h * HS;
    uint sbase = sg * uint(SUB * SW), pbase = sg * uint(SUB * PP);

    stage(p.qkv, C3, p.C + hoff, k0, b, 0);
    stage(p.qkv, C3, 2 * p.C + hoff, k0, b, 1);
    barrier();
    fcoopmatNV<16, gl_ScopeSubgroup, SUB, 16> ka[HS / 16], va[HS / 16];
    for (int k = 0; k < HS / 16; k++) {
        coopMatLoadNV(ka[k], Qs, uint(int(sg) * SUB * HP + k * 16), uint(HP), false);
        coopMatLoadNV(va[k], Os, uint(int(sg) * SUB * HP + k * 16), uint(HP), false);
    }
    fcoopmatNV<32, gl_ScopeSubgroup, SUB, LN> dk[HS / LN], dv[HS / LN];
    for (int n = 0; n < HS / LN; n++) {
        dk[n] = fcoopmatNV<32, gl_ScopeSubgroup, SUB, LN>(0.0);
        dv[n] = fcoopmatNV<32, gl_ScopeSubgroup, SUB, LN>(0.0);
    }

    float pr[HALF];
    for (int i0 = k0; i0 < p.T; i0 += BR) {
        barrier(); /* K and V loaded (first round); Q, dO, lse, D of the last round consumed */
        stage(p.qkv, C3, hoff, i0, b, 0);
        stage(p.dout, p.C, hoff, i0, b, 1);
        if (lid < uint(BR)) {
            int i = min(i0 + int(lid), p.T - 1), li = (b * p.NH + h) * p.T + i;
            Ls[lid] = F32s(p.lse).v[li];
            Ds[lid] = F32s(p.dd).v[li];
        }
        barrier();
        /* S^T = K Q^T: Q staged [query][d] is Q^T column-major */
        for (int n = 0; n < BR / LN; n++) {
            fcoopmatNV<32, gl_ScopeSubgroup, SUB, LN> s = fcoopmatNV<32, gl_ScopeSubgroup, SUB, LN>(0.0);
            for (int k = 0; k < HS / 16; k++) {
                fcoopmatNV<16, gl_ScopeSubgroup, 16, LN> qb;
                coopMatLoadNV(qb, Qs, uint(n * LN * HP + k * 16), uint(HP), true);
                s = coopMatMulAddNV(ka[k], qb, s);
            }
            coopMatStoreNV(s, Ss, sbase + uint(n * LN), uint(SW), false);
        }
        sync_subgroup();
        for (int c = 0; c < HALF; c++) {
            int ii = hf * HALF + c, i = i0 + ii;
            float x = Ss[sbase + uint(r * SW + ii)];
            pr[c] = j < p.T && i >= j && i < p.T ? exp(x * p.scale - Ls[ii]) : 0.0;
            Ps[pbase + uint(r * PP + ii)] = float16_t(pr[c]);
        }
        sync_subgroup();
        /* dv += P^T dO: P^T row-major A, dO staged [query][d] row-major B */
        fcoopmatNV<16, gl_ScopeSubgroup, SUB, 16> pa[BR / 16];
        for (int k = 0; k < BR / 16; k++) coopMatLoadNV(pa[k], Ps, pbase + uint(k * 16), uint(PP), false);
        for (int n = 0; n < HS / LN; n++)
            for (int k = 0; k < BR / 16; k++) {
                fcoopmatNV<16, gl_ScopeSubgroup, 16, LN> ob;
                coopMatLoadNV(ob, Os, uint(k * 16 * HP + n * LN), uint(HP), false);
                dv[n] = coopMatMulAddNV(pa[k], ob, dv[n]);
            }
        /* dP^T = V dO^T: dO staged [query][d] is dO^T column-major */
        for (int n = 0; n < BR / LN; n++) {
            fcoopmatNV<32, gl_ScopeSubgroup, SUB, LN> s = fcoopmatNV<32, gl_ScopeSubgroup, SUB, LN>(0.0);
            for (int k = 0; k < HS / 16; k++) {
                fcoopmatNV<16, gl_ScopeSubgroup, 16, LN> ob;
                coopMatLoadNV(ob, Os, uint(n * LN * HP + k * 16), uint(HP), true);
                s = coopMatMulAddNV(va[k], ob, s);
            }
            coopMatStoreNV(s, Ss, sbase + uint(n * LN), uint(SW), false);
        }
        sync_subgroup();
        for (int c = 0; c < HALF; c++) {
            int ii = hf * HALF + c;
            Ps[pbase + uint(r * PP + ii)] = float16_t(pr[c] * (Ss[sbase + uint(r * SW + ii)] - Ds[ii]));
        }
        sync_subgroup();
        /* dk += dS^T Q: dS^T row-major A, Q staged [query][d] row-major B */
        for (int k = 0; k < BR / 16; k++) coopMatLoadNV(pa[k], Ps, pbase + uint(k * 16), uint(PP), false);
        for (int n = 0; n < HS / LN; n++)
            for (int k = 0; k < BR / 16; k++) {
                fcoopmatNV<16, gl_ScopeSubgroup, 16, LN> qb;
                coopMatLoadNV(qb, Qs, uint(k * 16 * HP + n * LN), uint(HP), false);
                dk[n] = coopMatMulAddNV(pa[k], qb, dk[n]);
            }
    }
    /* dk then dv through the patch (every lane takes part in the stores) */
    ACTs o = act_row(p.dqkv, uint(b * p.T + min(j, p.T - 1)), C3);
    for (int part = 1; part <= 2; part++) {
        sync_subgroup();
        for (int n = 0; n < HS / LN; n++) {
            if (part == 1) coopMatStoreNV(dk[n], Ss, sbase + uint(n * LN), uint(SW), false);
            else coopMatStoreNV(dv[n], Ss, sbase + uint(n * LN), uint(SW), false);
        }
        sync_subgroup();
        float f = part == 1 ? p.scale : 1.0;
        if (j < p.T)
            for (int i = 0; i < HS / 2; i++) {
                int d = hf * (HS / 2) + i;
                o.v[part * p.C + hoff + d] = ACT_T(Ss[sbase + uint(r * SW + d)] * f);
            }
    }
}
