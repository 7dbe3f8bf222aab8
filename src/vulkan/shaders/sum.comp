#version 450
/* out[0] (+)= sum of n floats, one workgroup, compensated (Kahan) sums
 * per thread in a fixed order: deterministic and close to a double sum. */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { uint64_t out_, in_, n; int accumulate; } p;
void main() {
    uint lid = gl_LocalInvocationID.x;
    float s = 0.0, comp = 0.0;
    for (uint64_t i = lid; i < p.n; i += 256) {
        float y = f32_at(p.in_, i).v[0] - comp;
        float t = s + y;
        comp = (t - s) - y;
        s = t;
    }
    float tot = block_sum(s);
    if (lid == 0) {
        F32s o = F32s(p.out_);
        o.v[0] = p.accumulate != 0 ? o.v[0] + tot : tot;
    }
}
