/*
 * encoder.cu - token + position embedding, forward and backward.
 *
 * The backward is deterministic: instead of atomically adding each
 * position's gradient into its token's row (whose order, and so whose
 * rounding, changes from run to run), positions are radix-sorted by token
 * id (stable, so each token's positions stay in increasing order) and one
 * warp sums each token's run of positions in that order. The sort runs on
 * the stream with workspace from reserve(), so it can be graph-captured.
 */
#include <cub/device/device_radix_sort.cuh>

#include "cuda_common.cuh"

/* out[b,t,:] = wte[tok,:] + wpe[p,:]; an invalid id or position gives a
 * zero row. VEC elements per thread (VEC > 1 only when C % VEC == 0 and
 * the pointers are 16-byte aligned). */
template <typename T, int VEC>
__global__ void encoder_forward_kernel(T *out, const int *tok, const int *pos0, const T *wte,
                                       const T *wpe, int B, int T_, int C, int Vp, int maxT) {
    /* decoding: a programmatic dependent of the step's argmax (tok and pos0
     * are its outputs), and lets the first product's blocks be scheduled */
    pdl_wait_and_release();
    int cv = C / VEC;
    size_t total = (size_t)B * T_ * cv;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t row = i / cv;
        int c = (int)(i % cv) * VEC;
        int b = (int)(row / T_), t = (int)(row % T_);
        int id = tok[row];
        long long p = (long long)(pos0 ? pos0[b] : 0) + t;
        float e[VEC], q[VEC];
        if (id >= 0 && id < Vp && p >= 0 && p < maxT) {
            load_f<VEC>(e, wte + (size_t)id * C + c);
            load_f<VEC>(q, wpe + (size_t)p * C + c);
            for (int k = 0; k < VEC; k++) e[k] += q[k];
        } else {
            for (int k = 0; k < VEC; k++) e[k] = 0.f;
        }
        store_f<VEC>(out + row * C + c, e);
    }
}

template <typename T>
static void encoder_forward_t(gpt_backend *be, T *out, const int *tok, const int *pos0,
                              const T *wte, const T *wpe, int B, int T_, int C, int Vp, int maxT) {
    cuda_ctx *c = cuda_ctx_of(be);
    constexpr int V = vec16<T>::n;
    int vec = (C % V == 0 && cuda_aligned16(out) && cuda_aligned16(wte) && cuda_aligned16(wpe));
    size_t work = (size_t)B * T_ * (vec ? C / V : C);
    unsigned grid = (unsigned)((work + 255) / 256);
    unsigned cap = (unsigned)c->prop.multiProcessorCount * 16;
    if (grid > cap) grid = cap;
    int pdl = (size_t)B * T_ <= CUDA_PDL_MAX_ROWS; /* decoding */
    cudaError_t e = vec ? launch_k(c->stream, pdl, encoder_forward_kernel<T, V>, dim3(grid), dim3(256), 0,
                                   out, tok, pos0, wte, wpe, B, T_, C, Vp, maxT)
                        : launch_k(c->stream, pdl, encoder_forward_kernel<T, 1>, dim3(grid), dim3(256), 0,
                                   out, tok, pos0, wte, wpe, B, T_, C, Vp, maxT);
    if (!CUDA_CHECK(be, e)) CUDA_LAUNCHED(be, "encoder_forward");
}

extern "C" void cuda_encoder_forward(gpt_backend *be, void *out, const int *tok, const int *pos0,
                                     const void *wte, const void *wpe, int B, int T, int C,
                                     int Vp, int maxT) {
    CUDA_SKIP_IF_FAILED(be);
    if (B < 0 || T < 0 || C < 1 || Vp < 0 || maxT < 0) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "cuda encoder_forward: bad shape B=%d T=%d C=%d", B,
                         T, C);
        return;
    }
    if (!B || !T) return;
    if (cuda_bf16(be))
        encoder_forward_t(be, (bf16 *)out, tok, pos0, (const bf16 *)wte, (const bf16 *)wpe, B, T, C,
                          Vp, maxT);
    else
        encoder_forward_t(be, (float *)out, tok, pos0, (const float *)wte, (const float *)wpe, B, T,
                          C, Vp, maxT);
}

/* ------------------------------------------------------------ backward */

/* Sort keys: the token id, or Vp (sorted last, then skipped) if invalid. */
__global__ void encoder_keys_kernel(int *keys, int *vals, const int *tok, int n, int Vp) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int id = tok[i];
    keys[i] = (id >= 0 && id < Vp) ? id : Vp;
    vals[i] = i;
}

/* One warp per sorted index; the warp at the start of a token's run sums
 * the run in position order and adds it to that token's row. */
template <typename T>
__global__ void encoder_wte_kernel(float *dwte, const T *dout, const int *keys, const int *vals,
                                   int n, int C, int Vp) {
    int i = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5);
    int lane = threadIdx.x & 31;
    if (i >= n) return;
    int key = keys[i];
    if (key >= Vp || (i > 0 && keys[i - 1] == key)) return;
    int end = i + 1;
    while (end < n && keys[end] == key) end++;
    float *row = dwte + (size_t)key * C;
    for (int c = lane; c < C; c += 32) {
        float acc = 0.f;
        for (int j = i; j < end; j++) acc += to_f(dout[(size_t)vals[j] * C + c]);
        row[c] += acc;
    }
}

/* dwpe[t,c] += sum over b of dout[b,t,c], b in order. */
template <typename T>
__global__ void encoder_wpe_kernel(float *dwpe, const T *dout, int B, int T_, int C) {
    size_t total = (size_t)T_ * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        float acc = 0.f;
        for (int b = 0; b < B; b++) acc += to_f(dout[(size_t)b * total + i]);
        dwpe[i] += acc;
    }
}

static int sort_end_bit(int Vp) {
    int bits = 1;
    while (bits < 31 && (1u << bits) <= (unsigned)Vp) bits++;
    return bits; /* keys lie in [0, Vp] < 2^bits */
}

extern "C" size_t cuda_encoder_sort_bytes(size_t n, int Vp) {
    size_t bytes = 0;
    if (!n) return 0;
    cub::DeviceRadixSort::SortPairs((void *)NULL, bytes, (const int *)NULL, (int *)NULL,
                                    (const int *)NULL, (int *)NULL, (int)n, 0, sort_end_bit(Vp),
                                    (cudaStream_t)0);
    return bytes;
}

template <typename T>
static void encoder_backward_t(gpt_backend *be, float *dwte, float *dwpe, const T *dout,
                               const int *tok, int B, int T_, int C, int Vp) {
    cuda_ctx *c = cuda_ctx_of(be);
    int n = B * T_;
    int *keys_in = c->enc_sort, *keys_out = keys_in + c->enc_n;
    int *vals_in = keys_out + c->enc_n, *vals_out = vals_in + c->enc_n;
    if (dwte && Vp > 0) {
        encoder_keys_kernel<<<cuda_cdiv(n, 256), 256, 0, c->stream>>>(keys_in, vals_in, tok, n, Vp);
        if (CUDA_LAUNCHED(be, "encoder_keys")) return;
        size_t bytes = c->enc_tmp_bytes;
        cudaError_t e = cub::DeviceRadixSort::SortPairs(c->enc_tmp, bytes, keys_in, keys_out,
                                                        vals_in, vals_out, n, 0, sort_end_bit(Vp),
                                                        c->stream);
        if (CUDA_CHECK(be, e)) return;
        encoder_wte_kernel<<<cuda_cdiv((size_t)n * 32, 256), 256, 0, c->stream>>>(
            dwte, dout, keys_out, vals_out, n, C, Vp);
        if (CUDA_LAUNCHED(be, "encoder_wte")) return;
    }
    if (dwpe) {
        size_t total = (size_t)T_ * C;
        unsigned grid = (unsigned)((total + 255) / 256);
        unsigned cap = (unsigned)c->prop.multiProcessorCount * 16;
        if (grid > cap) grid = cap;
        encoder_wpe_kernel<<<grid, 256, 0, c->stream>>>(dwpe, dout, B, T_, C);
        CUDA_LAUNCHED(be, "encoder_wpe");
    }
}

extern "C" void cuda_encoder_backward(gpt_backend *be, void *dwte, void *dwpe, const void *dout,
                                      const int *tok, int B, int T, int C, int Vp) {
    CUDA_SKIP_IF_FAILED(be);
    cuda_ctx *c = cuda_ctx_of(be);
    if (B < 0 || T < 0 || C < 1) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "cuda encoder_backward: bad shape B=%d T=%d C=%d",
                         B, T, C);
        return;
    }
    size_t n = (size_t)B * T;
    if (!n) return;
    size_t need = cuda_encoder_sort_bytes(n, Vp);
    if (n > c->enc_n || need > c->enc_tmp_bytes) {
        gpt_backend_fail(be, GPT_ERR_INVALID,
                         "cuda encoder_backward: B*T=%zu (Vp=%d) exceeds the workspace reserve() "
                         "sized (B*T=%zu); call reserve with train=1 and these shapes first",
                         n, Vp, c->enc_n);
        return;
    }
    if (cuda_bf16(be))
        encoder_backward_t(be, (float *)dwte, (float *)dwpe, (const bf16 *)dout, tok, B, T, C, Vp);
    else
        encoder_backward_t(be, (float *)dwte, (float *)dwpe, (const float *)dout, tok, B, T, C, Vp);
}
