/*
 * common.glsl - what every shader shares: buffer references for the
 * tensor classes (the backend passes device addresses in push
 * constants), the element type of PARAM and ACT (F16 = 1: fp16 storage,
 * fp32 arithmetic), flat workgroup ids, and block reductions over
 * subgroups. Compiled with -DF16=0 and -DF16=1.
 */
#extension GL_EXT_buffer_reference : require
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#if F16
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define ACT_T float16_t
#define AB 2
#else
#define ACT_T float
#define AB 4
#endif

layout(buffer_reference, std430, buffer_reference_align = 4) buffer F32s { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer I32s { int v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer U32s { uint v[]; };
layout(buffer_reference, std430, buffer_reference_align = AB) buffer ACTs { ACT_T v[]; };

/* Row r of a row-major tensor with rows of n elements (64-bit offsets:
 * N * Vp can pass 2^32). */
ACTs act_row(uint64_t base, uint r, uint n) { return ACTs(base + uint64_t(r) * uint64_t(n) * AB); }
F32s f32_row(uint64_t base, uint r, uint n) { return F32s(base + uint64_t(r) * uint64_t(n) * 4); }
ACTs act_at(uint64_t base, uint64_t i) { return ACTs(base + i * AB); }
F32s f32_at(uint64_t base, uint64_t i) { return F32s(base + i * 4); }

/* A value rounded to the storage type, as a store then a load gives. */
float rnd(float x) { return float(ACT_T(x)); }

/* Workgroup id over a grid the host may have folded into x and y. */
uint group_id() { return gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x; }

/* Sums and maxima over the workgroup, in a fixed order (subgroups, then
 * their partials in subgroup order): the same inputs give the same bits. */
shared float red_sh[64];
float block_sum(float x) {
    float s = subgroupAdd(x);
    if (subgroupElect()) red_sh[gl_SubgroupID] = s;
    barrier();
    float r = 0.0;
    for (uint i = 0; i < gl_NumSubgroups; i++) r += red_sh[i];
    barrier();
    return r;
}
float block_max(float x) {
    float s = subgroupMax(x);
    if (subgroupElect()) red_sh[gl_SubgroupID] = s;
    barrier();
    float r = red_sh[0];
    for (uint i = 1; i < gl_NumSubgroups; i++) r = max(r, red_sh[i]);
    barrier();
    return r;
}

/* GELU, tanh form (GPT-2), with tanh(u) = 1 - 2 / (1 + exp(2u)): no
 * inf / inf for large |u|. */
const float GELU_S = 0.7978845608028654;
const float GELU_C = 0.044715;
float tanh_safe(float u) { return 1.0 - 2.0 / (1.0 + exp(2.0 * u)); }
float gelu(float x) { return 0.5 * x * (1.0 + tanh_safe(GELU_S * (x + GELU_C * x * x * x))); }
float gelu_grad(float x) {
    float t = tanh_safe(GELU_S * (x + GELU_C * x * x * x));
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_S * (1.0 + 3.0 * GELU_C * x * x);
}

/* Decoding attention's output element d of one (row, head), merged in
 * chunk order from the n chunks attn_kv_split.comp wrote (m, l, then the
 * HS unnormalised outputs each, `stride` = HS + 2 floats):
 * sum_c exp(m_c - M) o_c[d] / sum_c exp(m_c - M) l_c, M the largest m_c.
 * attn_kv_combine.comp and matvec.comp's PRE = 2 both merge with it, so
 * the folded and the separate paths give the same bits. */
float kv_merge(F32s part, uint stride, int n, int d) {
    float mx = -1.0 / 0.0;
    for (int c = 0; c < n; c++) mx = max(mx, part.v[uint(c) * stride]);
    float l = 0.0, acc = 0.0;
    for (int c = 0; c < n; c++) {
        float f = exp(part.v[uint(c) * stride] - mx);
        l += f * part.v[uint(c) * stride + 1];
        acc += f * part.v[uint(c) * stride + 2 + uint(d)];
    }
    return acc / l;
}
