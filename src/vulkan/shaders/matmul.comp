#version 450
/* C (M, N) = A (M, K) B (K, N), fp32 accumulation in 64 x 64 tiles through
 * shared memory, 256 threads with 4 x 4 results each. Layouts
 * (specialization): A(m, k) at a[m * lda + k] (TA = 0) or a[k * lda + m]
 * (TA = 1); B(k, n) at b[n * ldb + k] (TB = 0, a weight (OC, IC) in the
 * forward) or b[k * ldb + n] (TB = 1). Epilogues (EPI):
 *   0: y = acc + bias[n]; with GELU: pre = y (if pre), out = gelu(y); else out = y
 *   1: out = acc, times gelu'(pre[m, n]) if pre (the backward of a GELU)
 *   2: out (fp32) += acc / loss scale (weight gradients)
 * Every output row is N elements long. */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(constant_id = 0) const int TA = 0;
layout(constant_id = 1) const int TB = 0;
layout(constant_id = 2) const int EPI = 0;
layout(push_constant) uniform PC {
    uint64_t a, b, out_, pre, bias, scale;
    int M, N, K, lda, ldb, gelu_on, tiles_n;
} p;
const int BM = 64, BN = 64, BK = 16;
shared float As[BK][BM + 4];
shared float Bs[BK][BN + 4];

void main() {
    uint tid = gl_LocalInvocationID.x, g = group_id();
    int m0 = int(g / uint(p.tiles_n)) * BM, n0 = int(g % uint(p.tiles_n)) * BN;
    int tx = int(tid % 16), ty = int(tid / 16);
    float acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0;
    for (int k0 = 0; k0 < p.K; k0 += BK) {
        /* A tile: 64 x 16; four elements a thread along the contiguous index */
        if (TA == 0) {
            int m = m0 + int(tid / 4), k = k0 + int(tid % 4) * 4;
            ACTs r = act_row(p.a, uint(min(m, p.M - 1)), p.lda);
            for (int i = 0; i < 4; i++)
                As[k - k0 + i][m - m0] = m < p.M && k + i < p.K ? float(r.v[k + i]) : 0.0;
        } else {
            int k = k0 + int(tid / 16), m = m0 + int(tid % 16) * 4;
            ACTs r = act_row(p.a, uint(min(k, p.K - 1)), p.lda);
            for (int i = 0; i < 4; i++)
                As[k - k0][m - m0 + i] = k < p.K && m + i < p.M ? float(r.v[m + i]) : 0.0;
        }
        if (TB == 0) {
            int n = n0 + int(tid / 4), k = k0 + int(tid % 4) * 4;
            ACTs r = act_row(p.b, uint(min(n, p.N - 1)), p.ldb);
            for (int i = 0; i < 4; i++)
                Bs[k - k0 + i][n - n0] = n < p.N && k + i < p.K ? float(r.v[k + i]) : 0.0;
        } else {
            int k = k0 + int(tid / 16), n = n0 + int(tid % 16) * 4;
            ACTs r = act_row(p.b, uint(min(k, p.K - 1)), p.ldb);
            for (int i = 0; i < 4; i++)
                Bs[k - k0][n - n0 + i] = k < p.K && n + i < p.N ? float(r.v[n + i]) : 0.0;
        }
        barrier();
        for (int kk = 0; kk < BK; kk++) {
            float av[4], bv[4];
            for (int i = 0; i < 4; i++) av[i] = As[kk][ty + 16 * i];
            for (int j = 0; j < 4; j++) bv[j] = Bs[kk][tx + 16 * j];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) acc[i][j] += av[i] * bv[j];
        }
        barrier();
    }
    float inv = EPI == 2 ? 1.0 / F32s(p.scale).v[0] : 1.0;
    for (int i = 0; i < 4; i++) {
        int m = m0 + ty + 16 * i;
        if (m >= p.M) continue;
        for (int j = 0; j < 4; j++) {
            int n = n0 + tx + 16 * j;
            if (n >= p.N) continue;
            float y = acc[i][j];
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
    }
}
