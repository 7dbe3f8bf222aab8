#version 450
/* Softmax + cross-entropy over the first V of Vp columns, one workgroup per
 * row: losses[i] = logsumexp - logit[target]; with grad, the row becomes
 * dloss * S * (softmax - onehot), zeros past V, where S is the loss scale
 * (1 in fp32 mode; see vk_ops.c). Targets outside [0, V): loss 0 and a
 * zero row. */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { uint64_t losses, logits, tgt, scale; int N, V, Vp, grad; float dloss; } p;
void main() {
    uint row = group_id(), lid = gl_LocalInvocationID.x;
    if (row >= uint(p.N)) return;
    ACTs x = act_row(p.logits, row, p.Vp);
    int y = I32s(p.tgt).v[row];
    if (y < 0 || y >= p.V) {
        if (lid == 0) F32s(p.losses).v[row] = 0.0;
        if (p.grad != 0)
            for (uint j = lid; j < uint(p.Vp); j += 256) x.v[j] = ACT_T(0.0);
        return;
    }
    float mx = -1.0 / 0.0;
    for (uint j = lid; j < uint(p.V); j += 256) mx = max(mx, float(x.v[j]));
    mx = block_max(mx);
    float s = 0.0;
    for (uint j = lid; j < uint(p.V); j += 256) s += exp(float(x.v[j]) - mx);
    float lse = mx + log(block_sum(s));
    float xy = float(x.v[y]);
    barrier(); /* every thread has read logit[y] before it is overwritten */
    if (lid == 0) F32s(p.losses).v[row] = lse - xy;
    if (p.grad == 0) return;
    float d = p.dloss * F32s(p.scale).v[0];
    for (uint j = lid; j < uint(p.Vp); j += 256) {
        float g = 0.0;
        if (j < uint(p.V)) g = d * exp(float(x.v[j]) - lse) - (j == uint(y) ? d : 0.0);
        x.v[j] = ACT_T(g);
    }
}
