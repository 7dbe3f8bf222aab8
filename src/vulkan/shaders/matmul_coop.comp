#version 450
/* C (M, N) = A (M, K) B (K, N) on the tensor cores through cooperative
 * matrices (VK_NV_cooperative_matrix: fp16 A and B, fp32 accumulators),
 * fp16 builds only; the backend takes this shader only where the device
 * lists 16 x 16 x 16 or 16 x 8 x 16 fp16 -> fp32 matrices and its subgroups
 * are 32 wide. Layouts and epilogues are matmul.comp's (TA, TB, EPI), so
 * the two shaders are interchangeable for every product.
 *
 * A workgroup (8 subgroups) computes a 128 x 128 tile of C; each subgroup
 * a 64 x 32 part of it as 4 x (32 / LN) accumulator matrices. Per 32-wide
 * step of K, the workgroup stages the A and B tiles in shared memory in
 * their global orientation (so that the copy reads contiguous runs,
 * 16 bytes at a time where aligned: vec_a / vec_b), zero-filling past the
 * edges, and the subgroups load their fragments from there (row- or
 * column-major as staged). The epilogue goes through a 16 x LN fp32 cpatch
 * per subgroup in shared memory, so that bias, GELU, the fp16 rounding and
 * the bounds are applied element by element as in matmul.comp. */
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#include "common.glsl"

layout(local_size_x = 256) in;
layout(constant_id = 0) const int TA = 0;
layout(constant_id = 1) const int TB = 0;
layout(constant_id = 2) const int EPI = 0;
layout(constant_id = 3) const int LN = 16; /* the accumulator's columns: 16 or 8 */
const int LM = 16, LK = 16;
const int BM = 128, BN = 128, BK = 32, PAD = 8;
const int WM = 64, WN = 32;          /* one subgroup's part of the tile */
const int CM = WM / LM, CN = WN / LN; /* accumulators per subgroup */

layout(push_constant) uniform PC {
    uint64_t a, b, out_, pre, bias, scale;
    int M, N, K, lda, ldb, gelu_on, tiles_n, vec_a, vec_b;
} p;

layout(buffer_reference, std430, buffer_reference_align = 16) buffer U4s { uvec4 v[]; };

/* A staged as [BM][BK] (TA = 0) or [BK][BM] (TA = 1); B as [BN][BK]
 * (TB = 0) or [BK][BN] (TB = 1); rows padded by PAD halves. */
const int A_ROWS = TA == 0 ? BM : BK, A_COLS = TA == 0 ? BK : BM;
const int B_ROWS = TB == 0 ? BN : BK, B_COLS = TB == 0 ? BK : BN;
shared float16_t As[A_ROWS * (A_COLS + PAD)];
shared float16_t Bs[B_ROWS * (B_COLS + PAD)];
shared float Cs[8 * LM * 16];

/* Copies rows [r0, r0 + R) x columns [c0, c0 + Cn) of a row-major matrix
 * (rows of ld halves, rmax x cmax valid) into dst (row stride Cn + PAD). */
void stage_a(uint64_t base, int ld, int r0, int c0, int rmax, int cmax, bool vec) {
    const int R = A_ROWS, Cn = A_COLS, S = A_COLS + PAD;
    uint tid = gl_LocalInvocationID.x;
    for (uint e = tid; e < uint(R * Cn / 8); e += 256) {
        int r = int(e) / (Cn / 8), c = (int(e) % (Cn / 8)) * 8;
        int gr = r0 + r, gc = c0 + c;
        if (vec && gr < rmax && gc + 8 <= cmax) {
            uvec4 q = U4s(base + (uint64_t(gr) * uint64_t(ld) + uint64_t(gc)) * 2).v[0];
            vec2 h0 = unpackHalf2x16(q.x), h1 = unpackHalf2x16(q.y), h2 = unpackHalf2x16(q.z), h3 = unpackHalf2x16(q.w);
            As[r * S + c + 0] = float16_t(h0.x); As[r * S + c + 1] = float16_t(h0.y);
            As[r * S + c + 2] = float16_t(h1.x); As[r * S + c + 3] = float16_t(h1.y);
            As[r * S + c + 4] = float16_t(h2.x); As[r * S + c + 5] = float16_t(h2.y);
            As[r * S + c + 6] = float16_t(h3.x); As[r * S + c + 7] = float16_t(h3.y);
        } else {
            ACTs row = act_row(base, uint(min(gr, rmax - 1)), ld);
            for (int i = 0; i < 8; i++)
                As[r * S + c + i] = gr < rmax && gc + i < cmax ? row.v[gc + i] : float16_t(0.0);
        }
    }
}

void stage_b(uint64_t base, int ld, int r0, int c0, int rmax, int cmax, bool vec) {
    const int R = B_ROWS, Cn = B_COLS, S = B_COLS + PAD;
    uint tid = gl_LocalInvocationID.x;
    for (uint e = tid; e < uint(R * Cn / 8); e += 256) {
        int r = int(e) / (Cn / 8), c = (int(e) % (Cn / 8)) * 8;
        int gr = r0 + r, gc = c0 + c;
        if (vec && gr < rmax && gc + 8 <= cmax) {
            uvec4 q = U4s(base + (uint64_t(gr) * uint64_t(ld) + uint64_t(gc)) * 2).v[0];
            vec2 h0 = unpackHalf2x16(q.x), h1 = unpackHalf2x16(q.y), h2 = unpackHalf2x16(q.z), h3 = unpackHalf2x16(q.w);
            Bs[r * S + c + 0] = float16_t(h0.x); Bs[r * S + c + 1] = float16_t(h0.y);
            Bs[r * S + c + 2] = float16_t(h1.x); Bs[r * S + c + 3] = float16_t(h1.y);
            Bs[r * S + c + 4] = float16_t(h2.x); Bs[r * S + c + 5] = float16_t(h2.y);
            Bs[r * S + c + 6] = float16_t(h3.x); Bs[r * S + c + 7] = float16_t(h3.y);
        } else {
            ACTs row = act_row(base, uint(min(gr, rmax - 1)), ld);
            for (int i = 0; i < 8; i++)
                Bs[r * S + c + i] = gr < rmax && gc + i < cmax ? row.v[gc + i] : float16_t(0.0);
        }
    }
}

void main() {
    uint g = group_id(), warp = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    int m0 = int(g / uint(p.tiles_n)) * BM, n0 = int(g % uint(p.tiles_n)) * BN;
    int wm = int(warp / 4u) * WM, wn = int(warp % 4u) * WN; /* 2 x 4 subgroups */
    fcoopmatNV<32, gl_ScopeSubgroup, LM, LN> acc[CM][CN];
    for (int i = 0; i < CM; i++)
        for (int j = 0; j < CN; j++) acc[i][j] = fcoopmatNV<32, gl_ScopeSubgroup, LM, LN>(0.0);
    for (int k0 = 0; k0 < p.K; k0 += BK) {
        barrier();
        /* A(m, k): TA = 0 rows m, columns k; TA = 1 rows k, columns m */
        if (TA == 0) stage_a(p.a, p.lda, m0, k0, p.M, p.K, p.vec_a != 0);
        else stage_a(p.a, p.lda, k0, m0, p.K, p.M, p.vec_a != 0);
        /* B(k, n): TB = 0 rows n, columns k; TB = 1 rows k, columns n */
        if (TB == 0) stage_b(p.b, p.ldb, n0, k0, p.N, p.K, p.vec_b != 0);
        else stage_b(p.b, p.ldb, k0, n0, p.K, p.N, p.vec_b != 0);
        barrier();
        for (int kk = 0; kk < BK; kk += LK) {
            fcoopmatNV<16, gl_ScopeSubgroup, LM, LK> fa[CM];
            fcoopmatNV<16, gl_ScopeSubgroup, LK, LN> fb[CN];
            for (int i = 0; i < CM; i++) {
                int m = wm + i * LM;
                if (TA == 0) coopMatLoadNV(fa[i], As, uint(m * (BK + PAD) + kk), uint(BK + PAD), false);
                else coopMatLoadNV(fa[i], As, uint(kk * (BM + PAD) + m), uint(BM + PAD), true);
            }
            for (int j = 0; j < CN; j++) {
                int n = wn + j * LN;
                if (TB == 0) coopMatLoadNV(fb[j], Bs, uint(n * (BK + PAD) + kk), uint(BK + PAD), true);
                else coopMatLoadNV(fb[j], Bs, uint(kk * (BN + PAD) + n), uint(BN + PAD), false);
            }
            for (int i = 0; i < CM; i++)
                for (int j = 0; j < CN; j++) acc[i][j] = coopMatMulAddNV(fa[i], fb[j], acc[i][j]);
        }
    }
    float inv = EPI == 2 ? 1.0 / F32s(p.scale).v[0] : 1.0;
    uint cpatch = warp * uint(LM * 16);
    for (int i = 0; i < CM; i++)
        for (int j = 0; j < CN; j++) {
            coopMatStoreNV(acc[i][j], Cs, cpatch, uint(LN), false);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            for (uint e = lane; e < uint(LM * LN); e += gl_SubgroupSize) {
                int m = m0 + wm + i * LM + int(e) / LN, n = n0 + wn + j * LN + int(e) % LN;
                if (m >= p.M || n >= p.N) continue;
                float y = Cs[cpatch + e];
                if (EPI == 0) {
                    if (p.bias != 0) y += float(ACTs(p.bias).v[n]);
                    if (p.gelu_on != 0) {
                        if (p.pre != 0) act_row(p.pre, uint(m), p.N).v[n] = ACT_T(y);
                        y = gelu(y);
                    }
                    act_row(p.out_, uint(m), p.N).v[n] = ACT_T(y);
                } else if (EPI == 1) {
                    if (p.pre != 0) y *= gelu_grad(float(act_row(p.pre, uint(m), p.N).v[n]));
                    act_row(p.out_, uint(m), p.N).v[n] = ACT_T(y);
                } else {
                    F32s o = f32_row(p.out_, uint(m), p.N);
                    o.v[n] += y * inv;
                }
            }
            subgroupBarrier();
        }
}
