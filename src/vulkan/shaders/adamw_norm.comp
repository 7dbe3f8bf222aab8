#version 450
/* sumsq, first pass: partial sums of squared gradients, one per workgroup
 * (grid-stride over the n gradients, compensated sums); sum.comp adds the
 * partials in order. */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { uint64_t part, grad, n; } p;
void main() {
    uint lid = gl_LocalInvocationID.x, g = group_id();
    uint64_t stride = uint64_t(gl_NumWorkGroups.x) * gl_NumWorkGroups.y * 256;
    float s = 0.0, comp = 0.0;
    for (uint64_t i = uint64_t(g) * 256 + lid; i < p.n; i += stride) {
        float x = f32_at(p.grad, i).v[0];
        float y = x * x - comp, t = s + y;
        comp = (t - s) - y;
        s = t;
    }
    float tot = block_sum(s);
    if (lid == 0) F32s(p.part).v[g] = tot;
}
