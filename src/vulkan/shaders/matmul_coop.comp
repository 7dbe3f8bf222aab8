#version 450
/* C (M, N) = A (M, K) B (K, N) on the tensor cores through cooperative
 * matrices (VK_NV_cooperative_matrix: fp16 A and B, fp32 accumulators),
 * fp16 builds only; the backend takes this shader only where the device
 * lists 16 x 16 x 16 or 16 x 8 x 16 fp16 -> fp32 matrices and its subgroups
 * are 32 wide. Layouts and epilogues are matmul.comp's (TA, TB, EPI), so
 * the two shaders are interchangeable for every product.
 *
 * A workgroup (8 subgroups) computes a 128 x 128 tile of C; each subgroup
 * a 64 x 32 part of it as 4 x (32 / LN) accumulator matrices. Per 64-wide
 * step of K (half the barriers of 32-wide steps for the same work), the
 * workgroup stages the A and B tiles (44 KiB of shared memory with the
 * epilogue's patches) in shared memory in
 * their global orientation (so that the copy reads contiguous runs,
 * 16 bytes at a time where aligned: vec_a / vec_b), zero-filling past the
 * edges, and the subgroups load their fragments from there (row- or
 * column-major as staged). Shared memory holds uvec4s (8 halves), so
 * that a lane stores its 16 bytes at once rather than a half at a time
 * (the cooperative loads then count offsets and strides in uvec4s: every
 * one is a multiple of 8 halves). Each lane loads its share of the next K step
 * into registers before the multiply-adds of this one, so the global
 * loads are in flight while the tensor cores work. The epilogue goes
 * through a 16 x LN fp32 cpatch per subgroup in shared memory, so that
 * bias, GELU, the fp16 rounding and the bounds are applied element by
 * element as in matmul.comp. EPI = 3 (this shader only): a weight
 * gradient's product over one of several splits of K, whose fp32 partial
 * tiles go to out + split * M * N for splitk_sum.comp to add (products
 * with few output tiles and a long K, which alone would leave most of the
 * GPU idle). */
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
const int BM = 128, BN = 128, BK = 64, PAD = 8;
const int WM = 64, WN = 32;          /* one subgroup's part of the tile */
const int CM = WM / LM, CN = WN / LN; /* accumulators per subgroup */

layout(push_constant) uniform PC {
    uint64_t a, b, out_, pre, bias, scale;
    int M, N, K, lda, ldb, gelu_on, tiles_n, vec_a, vec_b;
    int k_len; /* EPI = 3: the K of one split */
} p;

layout(buffer_reference, std430, buffer_reference_align = 16) buffer U4s { uvec4 v[]; };

/* A staged as [BM][BK] (TA = 0) or [BK][BM] (TA = 1); B as [BN][BK]
 * (TB = 0) or [BK][BN] (TB = 1); rows padded by PAD halves. */
const int A_ROWS = TA == 0 ? BM : BK, A_COLS = TA == 0 ? BK : BM;
const int B_ROWS = TB == 0 ? BN : BK, B_COLS = TB == 0 ? BK : BN;
const int AS = A_COLS + PAD, BS = B_COLS + PAD; /* row strides, halves */
shared uvec4 As[A_ROWS * AS / 8];
shared uvec4 Bs[B_ROWS * BS / 8];
shared float Cs[8 * LM * 16];

/* Each lane's share of a staged tile: 8 halves at each of PER places. */
const int PER = BM * BK / 8 / 256; /* = BN * BK / 8 / 256 = 4 */
uvec4 ra[PER], rb[PER];

/* The 8 halves at (r0 + r, c0 + c) of a row-major matrix (rows of ld
 * halves, rmax x cmax valid; zeros outside) for place e of a tile with Cn
 * columns. */
uvec4 fetch(uint64_t base, int ld, int r0, int c0, int rmax, int cmax, bool vec, int Cn, uint e) {
    int r = int(e) / (Cn / 8), c = (int(e) % (Cn / 8)) * 8;
    int gr = r0 + r, gc = c0 + c;
    if (vec && gr < rmax && gc + 8 <= cmax) {
        return U4s(base + (uint64_t(gr) * uint64_t(ld) + uint64_t(gc)) * 2).v[0];
    } else {
        ACTs row = act_row(base, uint(min(gr, rmax - 1)), ld);
        float16_t v[8];
        for (int i = 0; i < 8; i++) v[i] = gr < rmax && gc + i < cmax ? row.v[gc + i] : float16_t(0.0);
        return uvec4(packFloat2x16(f16vec2(v[0], v[1])), packFloat2x16(f16vec2(v[2], v[3])),
                     packFloat2x16(f16vec2(v[4], v[5])), packFloat2x16(f16vec2(v[6], v[7])));
    }
}

/* The registers of K step k0 (both tiles). */
void fetch_step(int m0, int n0, int k0) {
    uint tid = gl_LocalInvocationID.x;
    for (int i = 0; i < PER; i++) {
        uint e = tid + uint(i) * 256u;
        /* A(m, k): TA = 0 rows m, columns k; TA = 1 rows k, columns m */
        if (TA == 0) ra[i] = fetch(p.a, p.lda, m0, k0, p.M, p.K, p.vec_a != 0, A_COLS, e);
        else ra[i] = fetch(p.a, p.lda, k0, m0, p.K, p.M, p.vec_a != 0, A_COLS, e);
    }
    for (int i = 0; i < PER; i++) {
        uint e = tid + uint(i) * 256u;
        /* B(k, n): TB = 0 rows n, columns k; TB = 1 rows k, columns n */
        if (TB == 0) rb[i] = fetch(p.b, p.ldb, n0, k0, p.N, p.K, p.vec_b != 0, B_COLS, e);
        else rb[i] = fetch(p.b, p.ldb, k0, n0, p.K, p.N, p.vec_b != 0, B_COLS, e);
    }
}

/* The registers into the staging buffers. */
void store_step() {
    uint tid = gl_LocalInvocationID.x;
    for (int i = 0; i < PER; i++) {
        uint e = tid + uint(i) * 256u;
        int ar = int(e) / (A_COLS / 8), ac = (int(e) % (A_COLS / 8)) * 8;
        As[(ar * AS + ac) / 8] = ra[i];
    }
    for (int i = 0; i < PER; i++) {
        uint e = tid + uint(i) * 256u;
        int br = int(e) / (B_COLS / 8), bc = (int(e) % (B_COLS / 8)) * 8;
        Bs[(br * BS + bc) / 8] = rb[i];
    }
}

/* The multiply-adds of one staged K step. */
void mma_step(int wm, int wn, inout fcoopmatNV<32, gl_ScopeSubgroup, LM, LN> acc[CM][CN]) {
    for (int kk = 0; kk < BK; kk += LK) {
        fcoopmatNV<16, gl_ScopeSubgroup, LM, LK> fa[CM];
        fcoopmatNV<16, gl_ScopeSubgroup, LK, LN> fb[CN];
        for (int i = 0; i < CM; i++) {
            int m = wm + i * LM;
            if (TA == 0) coopMatLoadNV(fa[i], As, uint((m * AS + kk) / 8), uint(AS / 8), false);
            else coopMatLoadNV(fa[i], As, uint((kk * AS + m) / 8), uint(AS / 8), true);
        }
        for (int j = 0; j < CN; j++) {
            int n = wn + j * LN;
            if (TB == 0) coopMatLoadNV(fb[j], Bs, uint((n * BS + kk) / 8), uint(BS / 8), true);
            else coopMatLoadNV(fb[j], Bs, uint((kk * BS + n) / 8), uint(BS / 8), false);
        }
        for (int i = 0; i < CM; i++)
            for (int j = 0; j < CN; j++) acc[i][j] = coopMatMulAddNV(fa[i], fb[j], acc[i][j]);
    }
}

void main() {
    uint g = group_id(), warp = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    /* EPI = 3 (split K): groups [s * tiles, (s + 1) * tiles) take K from s * k_len */
    int kbeg = 0, kend = p.K;
    if (EPI == 3) {
        uint tiles = uint((p.M + BM - 1) / BM) * uint(p.tiles_n), sk = g / tiles;
        g -= sk * tiles;
        kbeg = int(sk) * p.k_len;
        kend = min(p.K, kbeg + p.k_len);
    }
    int m0 = int(g / uint(p.tiles_n)) * BM, n0 = int(g % uint(p.tiles_n)) * BN;
    int wm = int(warp / 4u) * WM, wn = int(warp % 4u) * WN; /* 2 x 4 subgroups */
    fcoopmatNV<32, gl_ScopeSubgroup, LM, LN> acc[CM][CN];
    for (int i = 0; i < CM; i++)
        for (int j = 0; j < CN; j++) acc[i][j] = fcoopmatNV<32, gl_ScopeSubgroup, LM, LN>(0.0);
    fetch_step(m0, n0, kbeg);
    for (int k0 = kbeg; k0 < kend; k0 += BK) {
        barrier(); /* every subgroup is done with the previous step's tiles */
        store_step();
        barrier();
        if (k0 + BK < kend) fetch_step(m0, n0, k0 + BK);
        mma_step(wm, wn, acc);
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
                } else if (EPI == 2) {
                    F32s o = f32_row(p.out_, uint(m), p.N);
                    o.v[n] += y * inv;
                } else { /* this split's partial sums, added by splitk_sum.comp */
                    uint64_t part = p.out_ + uint64_t(kbeg / p.k_len) * uint64_t(p.M) * uint64_t(p.N) * 4;
                    f32_row(part, uint(m), p.N).v[n] = y;
                }
            }
            subgroupBarrier();
        }
}
