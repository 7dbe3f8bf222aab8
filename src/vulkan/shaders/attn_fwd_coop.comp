#version 450
/* Causal flash attention forward on cooperative matrices (fp16 builds only;
 * attn_fwd.comp's contract: out (B, T, C), lse (B, NH, T) = max + log(sum)
 * unless 0, qkv (B, T, 3C)). Taken where the products run on cooperative
 * matrices, the head size is a multiple of 16 up to 64 and the device has
 * subgroup shuffles; written against VK_NV_cooperative_matrix and rewritten
 * to KHR at build time as matmul_coop.comp is (so the A types (Q, P) and the
 * B types (K^T, V) are distinct: B's columns are the constant LN).
 *
 * A workgroup (4 subgroups of 32) takes 64 queries of one (row, head); each
 * subgroup 16 of them. Q is staged once and kept as HS / 16 A matrices.
 * Per 64 keys: K and V are staged in shared memory; S = Q K^T (16 x 64 per
 * subgroup, fp32) goes to shared memory, where two lanes per query row
 * apply the scale, the causal mask and the online softmax (Dao et al.
 * 2022), writing P in fp16 over the staged Q; O_tile = P V (16 x HS) goes
 * through the same fp32 patch, and each lane adds its half row into its
 * registers after rescaling them. No (T, T) matrix exists. Shared memory:
 * 44 KiB at HS = 64 (K, V, the fp32 patches, Q / P), within the 48 KiB
 * every such device offers. */
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
const int HP = HS + PAD;                   /* staged row stride of Q, K, V (halves) */
const int PP = BC + PAD;                   /* row stride of P (halves) */
const int QP = BR * HP > 4 * SUB * PP ? BR * HP : 4 * SUB * PP;
const int SW = BC > HS ? BC : HS;          /* the fp32 patch's row: S or O_tile */
const int HALF = HS / 2;

layout(push_constant) uniform PC { uint64_t out_, lse, qkv; int B, T, C, NH; float scale; } p;

shared float16_t QPs[QP]; /* Q (BR x HP), then P (4 subgroups x SUB x PP) */
shared float16_t Ks[BC * HP];
shared float16_t Vs[BC * HP];
shared float Ss[4 * SUB * SW];

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

/* rows [r0, r0 + 64) of part (0 q, 1 k, 2 v) of head h, zero past T */
void stage(int part, int r0, int b, int h) {
    for (uint e = gl_LocalInvocationID.x; e < uint(64 * HS / 8); e += 128) {
        int r = int(e) / (HS / 8), d = int(e) % (HS / 8) * 8;
        float16_t x[8];
        load8(p.qkv, 3 * p.C, part * p.C + h * HS, r0 + r, b, d, x);
        for (int i = 0; i < 8; i++) {
            if (part == 0) QPs[r * HP + d + i] = x[i];
            else if (part == 1) Ks[r * HP + d + i] = x[i];
            else Vs[r * HP + d + i] = x[i];
        }
    }
}

void main() {
    uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    int q0 = int(gl_WorkGroupID.x) * BR, h = int(gl_WorkGroupID.y), b = int(gl_WorkGroupID.z);
    int r = int(lane) / 2, hf = int(lane) % 2; /* this lane's query row and half */
    int t = q0 + int(sg) * SUB + r;
    uint sbase = sg * uint(SUB * SW), pbase = sg * uint(SUB * PP);

    stage(0, q0, b, h);
    barrier();
    fcoopmatNV<16, gl_ScopeSubgroup, SUB, 16> qa[HS / 16];
    for (int k = 0; k < HS / 16; k++)
        coopMatLoadNV(qa[k], QPs, uint(int(sg) * SUB * HP + k * 16), uint(HP), false);

    float m = -1.0 / 0.0, l = 0.0;
    float o[HALF];
    for (int i = 0; i < HALF; i++) o[i] = 0.0;
    int last = min(q0 + BR - 1, p.T - 1);
    for (int j0 = 0; j0 <= last; j0 += BC) {
        barrier(); /* Q loaded (first round); K, V, P of the last round consumed */
        stage(1, j0, b, h);
        stage(2, j0, b, h);
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
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        /* online softmax: lanes 2r and 2r + 1 take row r, 32 columns each */
        float mx = -1.0 / 0.0;
        for (int jj = hf * (BC / 2); jj < (hf + 1) * (BC / 2); jj++) {
            int j = j0 + jj;
            float x = j <= t && j < p.T ? Ss[sbase + uint(r * SW + jj)] * p.scale : -1.0 / 0.0;
            Ss[sbase + uint(r * SW + jj)] = x;
            mx = max(mx, x);
        }
        mx = max(mx, subgroupShuffleXor(mx, 1));
        float mn = max(m, mx);
        float corr = mn == -1.0 / 0.0 ? 1.0 : exp(m - mn), sum = 0.0;
        for (int jj = hf * (BC / 2); jj < (hf + 1) * (BC / 2); jj++) {
            float x = Ss[sbase + uint(r * SW + jj)];
            float e = x == -1.0 / 0.0 ? 0.0 : exp(x - mn);
            sum += e;
            QPs[pbase + uint(r * PP + jj)] = float16_t(e);
        }
        sum += subgroupShuffleXor(sum, 1);
        l = l * corr + sum;
        m = mn;
        for (int i = 0; i < HALF; i++) o[i] *= corr;
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        /* O_tile = P V: P row-major A, V staged [key][d] row-major B */
        fcoopmatNV<16, gl_ScopeSubgroup, SUB, 16> pa[BC / 16];
        for (int k = 0; k < BC / 16; k++)
            coopMatLoadNV(pa[k], QPs, pbase + uint(k * 16), uint(PP), false);
        for (int n = 0; n < HS / LN; n++) {
            fcoopmatNV<32, gl_ScopeSubgroup, SUB, LN> acc = fcoopmatNV<32, gl_ScopeSubgroup, SUB, LN>(0.0);
            for (int k = 0; k < BC / 16; k++) {
                fcoopmatNV<16, gl_ScopeSubgroup, 16, LN> vb;
                coopMatLoadNV(vb, Vs, uint(k * 16 * HP + n * LN), uint(HP), false);
                acc = coopMatMulAddNV(pa[k], vb, acc);
            }
            coopMatStoreNV(acc, Ss, sbase + uint(n * LN), uint(SW), false);
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        for (int i = 0; i < HALF; i++) o[i] += Ss[sbase + uint(r * SW + hf * HALF + i)];
    }
    if (t >= p.T) return;
    ACTs orow = act_row(p.out_, uint(b * p.T + t), p.C);
    float inv = 1.0 / l;
    for (int i = 0; i < HALF; i++) orow.v[h * HS + hf * HALF + i] = ACT_T(o[i] * inv);
    if (p.lse != 0 && hf == 0) F32s(p.lse).v[(b * p.NH + h) * p.T + t] = m + log(l);
}
